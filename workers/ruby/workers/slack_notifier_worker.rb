# frozen_string_literal: true

require_relative "../runtime/base"

# SlackNotifierWorker(channel, user_id, text): posts to a configured Slack channel, one
# worker for what were 15 (shared/WORKERS.md). The host owns the channel list: an unknown
# channel comes back as a non-retryable UnknownChannel host error that names the known
# ones, and we let it propagate so the job fails permanently with that message.
class SlackNotifierWorker < SimbiWorker::Base
  USER_SQL = "SELECT id, first_name, last_name, email, deleted_at FROM users WHERE id = :id"

  def perform(channel, user_id, text)
    require_text!("channel", channel)
    require_text!("text", text)

    text = "#{text} — #{mention(user_id)}" unless user_id.nil?
    host.call("slack", "post", { channel:, text:, user_id: })
  end

  private

  # A gone user still gets the post (the event happened), just without personal details.
  def mention(user_id)
    user = host.call("db", "query", { sql: USER_SQL, params: { id: user_id } })["rows"].first
    return "user #{user_id} (deleted)" if user.nil? || user["deleted_at"]

    parts = ["user #{user_id}", user["first_name"], user["last_name"]]
    parts << "<#{user['email']}>" if user["email"]
    parts.compact.join(" ")
  end

  def require_text!(name, value)
    return if value.is_a?(String) && !value.strip.empty?

    raise SimbiWorker::PermanentError, "#{name} must be a non-empty String, got #{value.inspect}"
  end
end
