# frozen_string_literal: true

require_relative "notification_worker"

# NotifyNewFollowerWorker(follow_id): pushes to the person followed, category followers
# (shared/WORKERS.md). The queue's unique lock covers the same follow_id; the Redis key
# per pair also covers an unfollow and follow again (a new follow_id) within the day.
class NotifyNewFollowerWorker < NotificationWorker
  FOLLOW_SQL = "SELECT id, follower_id, followed_id FROM follows WHERE id = :id"
  DEDUPE_SECONDS = 86_400

  def perform(follow_id)
    require_id!("follow_id", follow_id)
    follow = host.call("db", "query", { sql: FOLLOW_SQL, params: { id: follow_id } })["rows"].first
    skip!("follow #{follow_id} does not exist") if follow.nil?

    follower_id, followed_id = follow.values_at("follower_id", "followed_id")
    follower = Notify.load_user(host, follower_id)
    skip!("the follower, user #{follower_id}, is gone") if Notify.deleted?(follower)

    outcome = push_once(follow_id, follower, followed_id)
    skip!(outcome["reason"]) if outcome["status"] == "skipped"

    outcome.except("status")
  end

  private

  # The pair's key is a lease while the push is in flight (NotificationWorker#claim_lease),
  # then "sent" for the day, whatever push_to made of it (an opt-out or no devices too,
  # so the day's answer stays the same).
  def push_once(follow_id, follower, followed_id)
    key = "follow:notified:#{follower['id']}:#{followed_id}"
    unless claim_lease(key) == :claimed
      return skipped(followed_id, "user #{followed_id} was told about follower " \
                                  "#{follower['id']} within the last day")
    end

    name = Notify.name_or(follower["first_name"], "Someone")
    begin
      outcome = push_to(followed_id, Notify.load_user(host, followed_id), "followers",
                        "#{name} started following you on Simbi",
                        { "follow_id" => follow_id.to_s, "follower_id" => follower["id"].to_s })
    rescue StandardError
      # Nothing went out: free the pair so that the retry can push.
      release_quietly(key)
      raise
    end
    settle_lease(key, "sent", DEDUPE_SECONDS)
    outcome
  end
end
