# frozen_string_literal: true

require_relative "base"
require_relative "errors"
require_relative "notify"
require_relative "../lib/email_views"

module SimbiWorker
  # The parent of the email workers (shared/WORKERS.md, "Ruby: email"). It hides the host
  # calls behind the steps every email takes: load the recipient, honour their preference,
  # render the views, send through mail.send. No `perform`, so it is not a worker itself.
  class EmailWorker < Base
    USER_SQL = "SELECT id, first_name, last_name, email, deleted_at FROM users WHERE id = :id"
    # The db service reports a unique violation as a non-retryable ConstraintViolation,
    # which cannot tell the dedupe key from a foreign key; ON CONFLICT on the key alone
    # (SQLite >= 3.24, PostgreSQL) leaves rowcount 0 exactly when the claim exists.
    CLAIM_SQL = "INSERT INTO notifications_sent (user_id, kind, dedupe_key) " \
                "VALUES (:user_id, :kind, :dedupe_key) ON CONFLICT (dedupe_key) DO NOTHING"
    RELEASE_SQL = "DELETE FROM notifications_sent WHERE dedupe_key = :dedupe_key"

    # One line of SQL from a heredoc, so that logs and error messages show it whole.
    def self.sql(text)
      text.gsub(/\s+/, " ").strip.freeze
    end

    def self.app_url
      Notify.app_url
    end

    private

    def link(path)
      Notify.app_url(path)
    end

    def query(sql, **params)
      host.call("db", "query", { sql:, params: })["rows"]
    end

    def execute(sql, **params)
      host.call("db", "execute", { sql:, params: })["rowcount"]
    end

    # Job arguments are ids the app enqueued; anything else will never work on a retry.
    def require_id!(name, value)
      return if value.is_a?(Integer) && value.positive?

      raise PermanentError, "#{name} must be a positive Integer id, got #{value.inspect}"
    end

    # [user, nil] for an active user, [nil, why not] for a missing or soft-deleted one.
    def find_recipient(id)
      user = query(USER_SQL, id:).first
      return [nil, "user #{id} does not exist"] if user.nil?
      return [nil, "user #{id} is deleted"] if user["deleted_at"]

      [user, nil]
    end

    # The active user, or a skip that says why there is none.
    def recipient!(id)
      user, gone = find_recipient(id)
      skip!(gone) if gone
      user
    end

    def email_enabled?(user_id, category)
      Notify.enabled?(host, user_id, "email", category)
    end

    def require_email_enabled!(user_id, category)
      return if email_enabled?(user_id, category)

      skip!(opted_out(user_id, category))
    end

    def opted_out(user_id, category)
      "user #{user_id} opted out of #{category} emails"
    end

    # Runs the block once per dedupe key across every run of every job: false (and no
    # block) when the key was claimed before. A block that raises gives the claim back,
    # so the retry can do what this run could not.
    def once(user_id, kind, dedupe_key)
      return false if execute(CLAIM_SQL, user_id:, kind:, dedupe_key:).zero?

      begin
        yield
      rescue StandardError
        execute(RELEASE_SQL, dedupe_key:)
        raise
      end
      true
    end

    # Renders `view` for `user` and sends it. Every email here is non-transactional: the
    # footer carries the unsubscribe link for `category`, and mail.send adds the
    # List-Unsubscribe headers with the same link.
    def deliver(user, category:, subject:, view:, **locals)
      unsubscribe_url = host.call("mail", "unsubscribe_url",
                                  { user_id: user["id"], category: })["url"]
      locals = locals.merge(recipient: user, unsubscribe_url:)
      text = EmailViews.render(view, :text, locals)
      html = EmailViews.render(view, :html, locals)

      host.call("mail", "send", { to_email: user["email"], to_name: full_name(user),
                                  subject: one_line(subject), text:, html:, category:,
                                  transactional: false, user_id: user["id"] })
    end

    # Returns the new job's id.
    def enqueue(worker, args, in_seconds: nil)
      params = { worker:, args: }
      params[:in_seconds] = in_seconds if in_seconds
      host.call("jobs", "enqueue", params)["job_id"]
    end

    def excerpt(text, limit = 200)
      EmailText.excerpt(text, limit)
    end

    # nil when the user has no name at all: mail.send then addresses the bare email.
    def full_name(user)
      name = one_line([user["first_name"], user["last_name"]].compact.join(" "))
      name.empty? ? nil : name
    end

    # Headers take one line: mail.send refuses CR or LF (header injection), and names and
    # titles come from users.
    def one_line(text)
      text.to_s.gsub(/[[:space:]]+/, " ").strip
    end
  end
end
