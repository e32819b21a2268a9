# frozen_string_literal: true

require_relative "../runtime/email"

# The workers that tell a user both by push and by email (shared/WORKERS.md, "Ruby:
# notifications"). The push goes through SendPushWorker, which owns devices and push
# preferences; the email goes out here, under the user's email preference for the same
# category.
class PushAndEmailWorker < SimbiWorker::EmailWorker
  PUSH_EXCERPT_CHARS = 100

  private

  # Each channel is claimed on its own, so a retry after a failed email does not push
  # twice, and a second run of the whole job does nothing. Returns what each channel did;
  # skips when neither did anything this time.
  def push_and_email(user, subject_key:, category:, push:, email:)
    user_id = user["id"]
    outcome = {
      "push" => push_once(user_id, subject_key, category, push),
      "email" => email_once(user, subject_key, category, email)
    }
    return outcome if outcome.value?("enqueued") || outcome.value?("sent")

    skip!("#{subject_key}: push #{outcome['push']}, email #{outcome['email']}")
  end

  def push_once(user_id, subject_key, category, push)
    enqueued = once(user_id, "#{category}_push", "#{subject_key}:push") do
      enqueue("SendPushWorker", [user_id, category, push.fetch(:message), push.fetch(:data)])
    end
    enqueued ? "enqueued" : "already enqueued"
  end

  def email_once(user, subject_key, category, email)
    return "opted out" unless email_enabled?(user["id"], category)

    sent = once(user["id"], "#{category}_email", "#{subject_key}:email") do
      deliver(user, category:, **email)
    end
    sent ? "sent" : "already sent"
  end

  # "Ada complimented you: “Great lesson”", or without the quote when there is no text.
  def push_message(lead, text)
    quote = excerpt(text, PUSH_EXCERPT_CHARS)
    quote.empty? ? lead : "#{lead}: “#{quote}”"
  end
end

# NotifyComplimentWorker(compliment_id): push (category compliments) and email to the
# person complimented.
class NotifyComplimentWorker < PushAndEmailWorker
  COMPLIMENT_SQL = sql(<<~SQL)
    SELECT c.id, c.sender_id, c.receiver_id, c.body, sender.first_name AS sender_first_name
    FROM compliments c LEFT JOIN users sender ON sender.id = c.sender_id
    WHERE c.id = :id
  SQL

  def perform(compliment_id)
    require_id!("compliment_id", compliment_id)
    compliment = query(COMPLIMENT_SQL, id: compliment_id).first
    skip!("compliment #{compliment_id} is gone") if compliment.nil?
    receiver = recipient!(compliment["receiver_id"])

    push_and_email(receiver, subject_key: "compliment:#{compliment_id}", category: "compliments",
                             **messages(compliment))
  end

  private

  def messages(compliment)
    sender = name_or(compliment["sender_first_name"], "Someone")
    url = link("/compliments/#{compliment['id']}")
    data = { "type" => "compliment", "compliment_id" => compliment["id"].to_s, "url" => url }
    { push: { message: push_message("#{sender} complimented you", compliment["body"]), data: },
      email: { subject: "#{sender} complimented you", view: "notify_compliment",
               sender_name: sender, excerpt: excerpt(compliment["body"]), compliment_url: url } }
  end
end

# NotifyFavorWorker(favor_id): a favor is a request for help; push (category favors) and
# email to the person asked.
class NotifyFavorWorker < PushAndEmailWorker
  FAVOR_SQL = sql(<<~SQL)
    SELECT f.id, f.requester_id, f.asked_user_id, f.service_id, f.body,
           requester.first_name AS requester_first_name, s.title AS service_title
    FROM favors f
    LEFT JOIN users requester ON requester.id = f.requester_id
    LEFT JOIN services s ON s.id = f.service_id
    WHERE f.id = :id
  SQL

  def perform(favor_id)
    require_id!("favor_id", favor_id)
    favor = query(FAVOR_SQL, id: favor_id).first
    skip!("favor #{favor_id} is gone") if favor.nil?
    asked = recipient!(favor["asked_user_id"])

    push_and_email(asked, subject_key: "favor:#{favor_id}", category: "favors", **messages(favor))
  end

  private

  def messages(favor)
    requester = name_or(favor["requester_first_name"], "Someone")
    url = link("/favors/#{favor['id']}")
    data = { "type" => "favor", "favor_id" => favor["id"].to_s, "url" => url }
    { push: { message: push_message("#{requester} asked you for a favor", favor["body"]), data: },
      email: { subject: "#{requester} asked you for a favor", view: "notify_favor",
               requester_name: requester, service_title: favor["service_title"],
               excerpt: excerpt(favor["body"]), favor_url: url } }
  end
end
