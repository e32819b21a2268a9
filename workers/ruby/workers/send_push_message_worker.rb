# frozen_string_literal: true

require_relative "notification_worker"

# SendPushMessageWorker(message_id): pushes "Ada: <excerpt>" to every other participant of
# the message's talk, category messages (shared/WORKERS.md).
#
# Each recipient goes through SendPushWorker's own code path (push_to) in this job rather
# than through a SendPushWorker job each: the message and its sender are read once, every
# recipient's opt-out or missing devices shows in this job's value, and a talk has two
# participants in nearly every case, so there is one recipient and no fan-out to speak of.
# A permanent push error for one recipient (a bad provider config, say) is that
# recipient's "failed" outcome and the others are still pushed to; the job fails
# permanently only when every recipient failed. NOTE: a retryable push error retries the
# job once every recipient was tried, and the retry pushes again to those already
# reached; a duplicate push is the accepted cost.
class SendPushMessageWorker < NotificationWorker
  EXCERPT_CHARS = 100

  def perform(message_id)
    require_id!("message_id", message_id)
    message = load_message(message_id)
    skip!("message #{message_id} does not exist") if message.nil?

    sender = Notify.name_or(message["sender_first_name"], "Someone")
    body = "#{sender}: #{Notify.excerpt(message['body'], EXCERPT_CHARS)}"
    data = { "talk_id" => message["talk_id"].to_s, "message_id" => message_id.to_s }
    outcomes = talk_recipients(message).map do |user|
      recipient_outcome(user["id"]) { push_to(user["id"], user, "messages", body, data) }
    end

    finish_fanout(outcomes, "message #{message_id}")
  end
end
