# frozen_string_literal: true

require_relative "notification_worker"

# NotifyMatchWorker(match_id): pushes to both people of the match, each naming the other,
# category matches (shared/WORKERS.md). A match with someone deleted is not news: that
# side is skipped. A permanent push error for one person is that person's "failed"
# outcome; the other is still told. NOTE: as in SendPushMessageWorker, a retryable error
# pushing to one person retries the job (after the other was tried) and pushes to the
# other again.
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
    outcomes = [recipient_outcome(a_id) { tell(match_id, a_id, a, b_id, b) },
                recipient_outcome(b_id) { tell(match_id, b_id, b, a_id, a) }]
    finish_fanout(outcomes, "match #{match_id}")
  end

  private

  def tell(match_id, user_id, user, other_id, other)
    return skipped(user_id, "the other person, user #{other_id}, is gone") if Notify.deleted?(other)

    name = Notify.name_or(other["first_name"], "someone")
    message = "You matched with #{name} on Simbi: say hello!"
    data = { "match_id" => match_id.to_s, "user_id" => other_id.to_s }
    push_to(user_id, user, "matches", message, data)
  end
end
