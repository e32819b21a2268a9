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
    # A claim is a lease until sent_at is set: a run killed mid-send (SIGKILL, timeout)
    # never reaches a rescue, so its claim must expire by itself (LEASE_SECONDS).
    CLAIM_SQL = "INSERT INTO notifications_sent (user_id, kind, dedupe_key) " \
                "VALUES (:user_id, :kind, :dedupe_key) ON CONFLICT (dedupe_key) DO NOTHING"
    CLAIM_STATE_SQL = "SELECT sent_at FROM notifications_sent WHERE dedupe_key = :dedupe_key"
    TAKE_OVER_SQL = "UPDATE notifications_sent SET created_at = CURRENT_TIMESTAMP " \
                    "WHERE dedupe_key = :dedupe_key AND sent_at IS NULL AND created_at < :cutoff"
    MARK_SENT_SQL = "UPDATE notifications_sent SET sent_at = CURRENT_TIMESTAMP " \
                    "WHERE dedupe_key = :dedupe_key"
    RELEASE_SQL = "DELETE FROM notifications_sent " \
                  "WHERE dedupe_key = :dedupe_key AND sent_at IS NULL"
    LEASE_SECONDS = 120
    SUBJECT_CHARS = 200

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
      return if value.is_a?(Integer) && value.positive? && value <= MAX_ID

      limit = value.is_a?(Integer) && value.positive? ? " no larger than 2**63-1" : ""
      raise PermanentError, "#{name} must be a positive Integer id#{limit}, " \
                            "got #{describe_id(value)}"
    end

    def describe_id(value)
      text = value.inspect
      text.length > 80 ? "#{text[0, 80]}…" : text
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
    # block) when the key was sent before. The claim is a lease (see CLAIM_SQL): a block
    # that raises gives it back at once, and one whose run was killed mid-send lapses
    # after LEASE_SECONDS; a fresh claim of another run raises RetryableError, so this
    # job comes back once that run has sent (then skips) or died (then takes over).
    def once(user_id, kind, dedupe_key)
      return false unless claim(user_id, kind, dedupe_key)

      begin
        yield
      rescue StandardError
        release_quietly(dedupe_key)
        raise
      end
      mark_sent(dedupe_key)
      true
    end

    # true when this run holds the claim, false when the key was sent already.
    def claim(user_id, kind, dedupe_key)
      return true if execute(CLAIM_SQL, user_id:, kind:, dedupe_key:).positive?

      row = query(CLAIM_STATE_SQL, dedupe_key:).first
      return false if row && !row["sent_at"].nil?
      return true if row && execute(TAKE_OVER_SQL, dedupe_key:, cutoff: lease_cutoff).positive?

      raise RetryableError, "#{dedupe_key} is being sent by another run; retrying"
    end

    # UTC "YYYY-MM-DD HH:MM:SS+00:00", as SendSuggestedServicesWorker#cutoff explains:
    # SQLite compares created_at as text, PostgreSQL parses the offset.
    def lease_cutoff
      (Time.now.utc - LEASE_SECONDS).strftime("%Y-%m-%d %H:%M:%S+00:00")
    end

    # The send went out: a failure to record it must not fail the job (its retry would
    # send again once the lease lapsed), so it is only logged.
    def mark_sent(dedupe_key)
      execute(MARK_SENT_SQL, dedupe_key:)
    rescue StandardError => e
      log("could not mark #{dedupe_key} sent (it stays a lease): #{e.class}: #{e.message}")
    end

    # Called while another error propagates, which must stay the job's error: a release
    # that fails too only leaves the lease to lapse.
    def release_quietly(dedupe_key)
      execute(RELEASE_SQL, dedupe_key:)
    rescue StandardError => e
      log("could not release #{dedupe_key}: #{e.class}: #{e.message}")
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
                                  subject: subject_line(subject), text:, html:, category:,
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
    # titles come from users. Control characters go too (a NUL or ESC in a name).
    def one_line(text)
      Notify.one_line(text)
    end

    # A subject on one line, at most SUBJECT_CHARS characters.
    def subject_line(text)
      Notify.excerpt(text, SUBJECT_CHARS)
    end

    # `name` (a first name, a title) on one line, or `fallback` when that leaves nothing.
    def name_or(name, fallback)
      Notify.name_or(name, fallback)
    end
  end
end
