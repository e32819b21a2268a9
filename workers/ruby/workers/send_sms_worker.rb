# frozen_string_literal: true

require_relative "notification_worker"

# SendSmsWorker(user_id, body): an SMS to the user's phone when they opted in
# (shared/WORKERS.md). No user, no phone or no opt-in is a skip. InvalidNumber and
# Unsubscribed are permanent (Unsubscribed clears the opt-in first); RateLimited and
# ProviderUnavailable propagate as the host's retryable error, retry_after_seconds kept.
class SendSmsWorker < NotificationWorker
  def perform(user_id, body)
    require_id!("user_id", user_id)
    require_text!("body", body)

    user = Notify.load_user(host, user_id)
    reason = sms_skip_reason(user_id, user)
    skip!(reason) if reason

    reply = send_sms(user, body)
    { "user_id" => user_id, "sid" => reply["sid"], "delivered" => reply["delivered"] }
  end
end
