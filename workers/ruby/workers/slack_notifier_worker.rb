# frozen_string_literal: true

require_relative "../runtime/base"
require_relative "../runtime/notify"

# SlackNotifierWorker(channel, user_id, text): posts to a configured Slack channel, one
# worker for what were 15 (shared/WORKERS.md). The host owns the channel list: an unknown
# channel comes back as a non-retryable UnknownChannel host error that names the known
# ones, and we let it propagate so the job fails permanently with that message.
class SlackNotifierWorker < SimbiWorker::Base
  USER_SQL = "SELECT id, first_name, last_name, email, deleted_at FROM users WHERE id = :id"

  def perform(channel, user_id, text)
    require_text!("channel", channel)
    require_text!("text", text)
    require_user_id!(user_id)

    text = "#{text} — #{mention(user_id)}" unless user_id.nil?
    host.call("slack", "post", { channel:, text:, user_id: })
  end

  private

  # A gone user still gets the post (the event happened), just without personal details.
  def mention(user_id)
    user = host.call("db", "query", { sql: USER_SQL, params: { id: user_id } })["rows"].first
    return "user #{user_id} (deleted)" if user.nil? || user["deleted_at"]

    parts = ["user #{user_id}", slack_text(user["first_name"]), slack_text(user["last_name"])]
    parts << email_part(user["email"])
    parts.compact.join(" ")
  end

  # A plain address goes in <…> as before (Slack makes it a mail link); anything else,
  # one with "|" (a link label) or markup characters, is shown escaped as text.
  PLAIN_EMAIL = /\A[^\s<>&|@]+@[^\s<>&|@]+\z/

  def email_part(email)
    flat = SimbiWorker::Notify.one_line(email)
    return nil if flat.empty?
    return "<#{flat}>" if flat.match?(PLAIN_EMAIL)

    "(#{slack_text(flat)})"
  end

  # What a user typed, as Slack shows it literally: on one line, and &, < and > escaped
  # (Slack's formatting rules), so a name cannot be an <!channel> mention or a
  # <https://…|link>. nil when nothing is left.
  def slack_text(value)
    flat = SimbiWorker::Notify.one_line(value)
    return nil if flat.empty?

    flat.gsub("&", "&amp;").gsub("<", "&lt;").gsub(">", "&gt;")
  end

  def require_user_id!(user_id)
    return if user_id.nil?
    return if user_id.is_a?(Integer) && user_id.positive? && user_id <= SimbiWorker::MAX_ID

    raise SimbiWorker::PermanentError,
          "user_id must be nil or a positive Integer id no larger than 2**63-1, " \
          "got #{user_id.inspect[0, 80]}"
  end

  def require_text!(name, value)
    return if value.is_a?(String) && !value.strip.empty?

    raise SimbiWorker::PermanentError, "#{name} must be a non-empty String, got #{value.inspect}"
  end
end
