# frozen_string_literal: true

require_relative "../runtime/email"

# The email workers about something another user did (shared/WORKERS.md, "Ruby: email").
# The onboarding series, the suggestions and the push-and-email workers have files of
# their own: email_intro_worker.rb, email_suggestions_worker.rb, email_push_workers.rb.

# NotifyMessageWorker(user_id, talk_id, message_id): tells a participant of the talk that a
# message arrived, unless they have read it by the time the job runs.
class NotifyMessageWorker < SimbiWorker::EmailWorker
  MESSAGE_SQL = sql(<<~SQL)
    SELECT m.id, m.talk_id, m.sender_id, m.body, sender.first_name AS sender_first_name
    FROM messages m LEFT JOIN users sender ON sender.id = m.sender_id
    WHERE m.id = :id
  SQL
  PARTICIPANT_SQL = sql(<<~SQL)
    SELECT last_read_message_id FROM talk_participants
    WHERE talk_id = :talk_id AND user_id = :user_id
  SQL

  def perform(user_id, talk_id, message_id)
    { user_id:, talk_id:, message_id: }.each { |name, value| require_id!(name, value) }

    message = find_message!(talk_id, message_id)
    user = recipient!(user_id)
    require_email_enabled!(user_id, "messages")
    require_unread!(user_id, message)

    sender_name = name_or(message["sender_first_name"], "Someone")
    deliver(user, category: "messages", subject: "#{sender_name} sent you a message",
                  view: "notify_message", sender_name:, excerpt: excerpt(message["body"]),
                  talk_url: link("/talks/#{talk_id}"))
  end

  private

  # The app enqueues after the message is stored, so a missing message or one from
  # another talk means the job's arguments are wrong: retrying cannot fix that.
  def find_message!(talk_id, message_id)
    message = query(MESSAGE_SQL, id: message_id).first
    raise SimbiWorker::PermanentError, "message #{message_id} does not exist" if message.nil?
    return message if message["talk_id"] == talk_id

    raise SimbiWorker::PermanentError,
          "message #{message_id} belongs to talk #{message['talk_id']}, not to talk #{talk_id}"
  end

  # The sender, someone who left the talk, or who read up to this message already needs
  # no email.
  def require_unread!(user_id, message)
    talk_id, message_id = message.values_at("talk_id", "id")
    sender = message["sender_id"]
    skip!("user #{user_id} sent message #{message_id} themselves") if sender == user_id
    participant = query(PARTICIPANT_SQL, talk_id:, user_id:).first
    skip!("user #{user_id} is not a participant of talk #{talk_id}") if participant.nil?

    last_read = participant["last_read_message_id"]
    return if last_read.nil? || last_read < message_id

    skip!("user #{user_id} already read message #{message_id} (read up to #{last_read})")
  end
end

# NotifyCommentEmailWorker(comment_id): emails the owner of the commented service and the
# people who commented on it before, each once, never the comment's author.
class NotifyCommentEmailWorker < SimbiWorker::EmailWorker
  COMMENT_SQL = sql(<<~SQL)
    SELECT c.id, c.service_id, c.user_id, c.body, author.first_name AS author_first_name,
           s.user_id AS owner_id, s.title AS service_title
    FROM comments c
    JOIN services s ON s.id = c.service_id
    LEFT JOIN users author ON author.id = c.user_id
    WHERE c.id = :id
  SQL
  # Earlier commenters in the order of their first comment.
  EARLIER_COMMENTERS_SQL = sql(<<~SQL)
    SELECT user_id, MIN(id) AS first_comment_id FROM comments
    WHERE service_id = :service_id AND id < :comment_id
    GROUP BY user_id ORDER BY first_comment_id
  SQL

  # A comment deleted before the job ran is a skip, not a failure: deleting content is
  # something users do, and the job has nothing left to say.
  def perform(comment_id)
    require_id!("comment_id", comment_id)
    comment = query(COMMENT_SQL, id: comment_id).first
    skip!("comment #{comment_id} is gone") if comment.nil?

    outcome = notify_all(comment)
    finish(comment_id, outcome)
  end

  private

  # {"sent" => [user ids], "skipped" => {user id => why not}, "failed" => {user id =>
  # error}}. A permanent error for one recipient (mail.send refusing their address, say)
  # is theirs alone: the others are still emailed. A retryable one is raised once
  # everyone was tried; the retry skips those already emailed (their claims).
  def notify_all(comment)
    outcome = { "sent" => [], "skipped" => {}, "failed" => {} }
    retry_error = nil
    recipient_ids(comment).each do |user_id|
      reason = notify(user_id, comment)
      reason ? outcome["skipped"][user_id.to_s] = reason : outcome["sent"] << user_id
    rescue StandardError => e
      next outcome["failed"][user_id.to_s] = failure(user_id, e) if permanent?(e)

      log("recipient #{user_id}: retryable #{error_class(e)}: #{e.message}; " \
          "trying the others first")
      retry_error ||= e
    end
    raise retry_error if retry_error

    outcome
  end

  # Nobody emailed and nothing failed is a skip; every recipient failed is permanent.
  def finish(comment_id, outcome)
    sent, skipped, failed = outcome.values_at("sent", "skipped", "failed")
    if sent.empty? && failed.empty?
      skip!("comment #{comment_id}: nobody to email (#{skipped.values.join('; ')})")
    end
    if sent.empty? && skipped.empty?
      raise SimbiWorker::PermanentError,
            "comment #{comment_id}: every recipient failed: " +
            failed.map { |id, f| "user #{id}: #{f['message']}" }.join("; ")
    end
    # "failed" only when someone failed: the value's shape stays what it was otherwise.
    failed.empty? ? outcome.except("failed") : outcome
  end

  def permanent?(error)
    return !error.retryable? if error.is_a?(SimbiWorker::HostError)

    error.is_a?(SimbiWorker::PermanentError)
  end

  def error_class(error)
    (error.is_a?(SimbiWorker::HostError) && error.klass) || error.class.name
  end

  def failure(user_id, error)
    log("recipient #{user_id} failed: #{error_class(error)}: #{error.message}")
    { "error" => error_class(error), "message" => error.message }
  end

  def recipient_ids(comment)
    earlier = query(EARLIER_COMMENTERS_SQL, service_id: comment["service_id"],
                                            comment_id: comment["id"])
    ([comment["owner_id"]] + earlier.map { |row| row["user_id"] }).uniq - [comment["user_id"]]
  end

  # Emails one recipient; returns why not when it did not.
  def notify(user_id, comment)
    user, gone = find_recipient(user_id)
    return note(gone) if gone
    return note(opted_out(user_id, "comments")) unless email_enabled?(user_id, "comments")

    # A claim per recipient: a retry after a failure halfway through the list must not
    # email again those the failed run already reached.
    key = "comment:#{comment['id']}:#{user_id}"
    sent = once(user_id, "comment_email", key) { deliver_comment(user, comment) }
    sent ? nil : note("user #{user_id} was already emailed about comment #{comment['id']}")
  end

  def deliver_comment(user, comment)
    author = name_or(comment["author_first_name"], "Someone")
    owner = user["id"] == comment["owner_id"]
    title = comment["service_title"]
    subject = if owner
                "#{author} commented on #{name_or(title, 'your service')}"
              else
                "#{author} also commented on #{name_or(title, 'a service')}"
              end
    deliver(user, category: "comments", subject:, view: "notify_comment",
                  author_name: author, owner:, service_title: title,
                  excerpt: excerpt(comment["body"]),
                  comment_url: link("/services/#{comment['service_id']}#comment-#{comment['id']}"))
  end

  def note(reason)
    log("skip recipient: #{reason}")
    reason
  end
end

# SendEngagementFavoritedWorker(service_id, user_id): tells the service's owner that
# user_id added it to their favorites.
class SendEngagementFavoritedWorker < SimbiWorker::EmailWorker
  SERVICE_SQL = "SELECT id, user_id, title FROM services WHERE id = :id"

  def perform(service_id, user_id)
    require_id!("service_id", service_id)
    require_id!("user_id", user_id)

    service = find_service!(service_id, user_id)
    owner = recipient!(service["user_id"])
    require_email_enabled!(owner["id"], "favorites")
    fan, gone = find_recipient(user_id)
    skip!("the user who favorited service #{service_id} is gone: #{gone}") if gone

    deliver_favorited(owner, service, fan)
  end

  private

  def find_service!(service_id, user_id)
    service = query(SERVICE_SQL, id: service_id).first
    skip!("service #{service_id} is gone") if service.nil?
    return service unless service["user_id"] == user_id

    skip!("user #{user_id} favorited their own service #{service_id}")
  end

  def deliver_favorited(owner, service, fan)
    fan_name = name_or(fan["first_name"], "Someone")
    subject = "#{fan_name} favorited #{name_or(service['title'], 'your service')}"
    deliver(owner, category: "favorites", subject:,
                   view: "engagement_favorited", fan_name:,
                   service_title: service["title"], service_url: link("/services/#{service['id']}"),
                   fan_url: link("/users/#{fan['id']}"))
  end
end
