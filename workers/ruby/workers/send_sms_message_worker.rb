# frozen_string_literal: true

require_relative "notification_worker"

# SendSmsMessageWorker(message_id): an SMS to each other participant of the message's
# talk, at most one per recipient and talk in 10 minutes (shared/WORKERS.md). Only
# recipients with a phone, the SMS opt-in and message SMS not turned off.
#
# The 10 minutes are a Redis key per recipient and talk: "pending" (a lease, see
# NotificationWorker#claim_lease) while the SMS is being sent, "sent" for the 10 minutes
# after. Its value: {"sent", "skipped", "failed"} recipients. One recipient refused for
# good (InvalidNumber, Unsubscribed, ProviderRejected) does not stop the others: its key
# says "failed" for the window, and the job is permanent only when every recipient was
# refused. A retryable provider error releases that recipient's key; once every recipient
# was tried the job retries, and those already texted keep their keys, so the retry does
# not text them twice.
class SendSmsMessageWorker < NotificationWorker
  EXCERPT_CHARS = 80
  THROTTLE_SECONDS = 600

  def perform(message_id)
    require_id!("message_id", message_id)
    message = load_message(message_id)
    skip!("message #{message_id} does not exist") if message.nil?

    body = sms_body(message)
    outcomes = talk_recipients(message).map do |user|
      recipient_outcome(user["id"]) { text(message["talk_id"], user, body) }
    end

    finish_fanout(outcomes, "message #{message_id}")
  end

  private

  def sms_body(message)
    excerpt = Notify.excerpt(message["body"], EXCERPT_CHARS)
    link = Notify.app_url("/talks/#{message['talk_id']}")
    sender = Notify.name_or(message["sender_first_name"], "Someone")
    "#{sender} sent you a message on Simbi: #{excerpt} #{link}"
  end

  def text(talk_id, user, body)
    user_id = user["id"]
    reason = sms_skip_reason(user_id, user) || sms_opt_out_reason(user_id)
    return skipped(user_id, reason) if reason

    key = "sms:talk:#{talk_id}:user:#{user_id}"
    state = claim_lease(key)
    return deliver(user, body, key) if state == :claimed

    what = state == "failed" ? "an SMS refused" : "an SMS"
    skipped(user_id, "user #{user_id} had #{what} about talk #{talk_id} " \
                     "within the last #{THROTTLE_SECONDS / 60} minutes")
  end

  def sms_opt_out_reason(user_id)
    return nil if Notify.enabled?(host, user_id, "sms", "messages")

    "user #{user_id} turned off message SMS"
  end

  def deliver(user, body, key)
    reply = send_sms(user, body)
    settle_lease(key, "sent", THROTTLE_SECONDS)
    { "user_id" => user["id"], "status" => "sent", "sid" => reply["sid"] }
  rescue StandardError => e
    # Refused for good: recorded, and the key says so for the window (a retry of the job
    # could not deliver either).
    if permanent?(e)
      settle_lease(key, "failed", THROTTLE_SECONDS)
      raise
    end

    # Retryable: nothing reached this recipient; the retry may text them.
    release_quietly(key)
    raise
  end
end
