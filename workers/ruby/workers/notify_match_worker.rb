# frozen_string_literal: true

require_relative "notification_worker"

# NotifyMatchWorker(match_id): pushes to both people of the match, each naming the other,
# category matches (shared/WORKERS.md). A match with someone deleted is not news: that
# side is skipped. NOTE: as in SendPushMessageWorker, a retryable error pushing to the
# second person retries the job and pushes to the first again.
class NotifyMatchWorker < NotificationWorker
  MATCH_SQL = "SELECT id, user_a_id, user_b_id FROM matches WHERE id = :id"

  def perform(match_id)
    require_id!("match_id", match_id)
    match = host.call("db", "query", { sql: MATCH_SQL, params: { id: match_id } })["rows"].first
    skip!("match #{match_id} does not exist") if match.nil?

    a_id, b_id = match.values_at("user_a_id", "user_b_id")
    skip!("match #{match_id} pairs user #{a_id} with themselves") if a_id == b_id

    a = Notify.load_user(host, a_id)
    b = Notify.load_user(host, b_id)
    outcomes = [tell(match_id, a_id, a, b_id, b), tell(match_id, b_id, b, a_id, a)]
    finish_fanout(outcomes, "match #{match_id}")
  end

  private

  def tell(match_id, user_id, user, other_id, other)
    return skipped(user_id, "the other person, user #{other_id}, is gone") if Notify.deleted?(other)

    message = "You matched with #{other['first_name']} on Simbi: say hello!"
    data = { "match_id" => match_id.to_s, "user_id" => other_id.to_s }
    push_to(user_id, user, "matches", message, data)
  end
end
