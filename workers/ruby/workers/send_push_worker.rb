# frozen_string_literal: true

require_relative "notification_worker"

# SendPushWorker(user_id, category, message, data): pushes `message` to every device of
# the user unless they turned off push for `category` (shared/WORKERS.md). Devices the
# provider reports unregistered are deleted. A missing or deleted user, an opt-out or no
# devices is a skip; an unknown category or data that is not flat is permanent.
class SendPushWorker < NotificationWorker
  def perform(user_id, category, message, data)
    require_id!("user_id", user_id)
    require_push_category!(category)
    require_text!("message", message)
    data = push_data(data)

    outcome = push_to(user_id, Notify.load_user(host, user_id), category, message, data)
    skip!(outcome["reason"]) if outcome["status"] == "skipped"

    outcome.except("status")
  end
end
