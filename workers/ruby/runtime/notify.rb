# frozen_string_literal: true

module SimbiWorker
  # Small helpers shared by the workers that tell a person something (push, SMS, email):
  # loading the user, the per-channel preference, message excerpts and app links.
  # Module functions, so a worker calls `Notify.excerpt(...)` or includes the module.
  module Notify
    DEFAULT_APP_URL = "http://localhost:3000"

    USER_SQL = "SELECT id, first_name, last_name, phone, sms_opt_in, deleted_at " \
               "FROM users WHERE id = :id"
    PREFERENCE_SQL = "SELECT enabled FROM notification_preferences " \
                     "WHERE user_id = :user_id AND channel = :channel AND category = :category"

    module_function

    # The one place links are built: the host gives children SIMBI_APP_URL
    # (docs/protocol.md). `path` starts with "/".
    def app_url(path = "")
      base = ENV.fetch("SIMBI_APP_URL", "").strip
      base = DEFAULT_APP_URL if base.empty?
      "#{base.chomp('/')}#{path}"
    end

    # The user's row, or nil when there is no such user.
    def load_user(host, id)
      host.call("db", "query", { sql: USER_SQL, params: { id: } })["rows"].first
    end

    def deleted?(user)
      user.nil? || !user["deleted_at"].nil?
    end

    # No row means enabled (simbi_workers/store/schema.py, notification_preferences).
    def enabled?(host, user_id, channel, category)
      params = { user_id:, channel:, category: }
      row = host.call("db", "query", { sql: PREFERENCE_SQL, params: })["rows"].first
      row.nil? || flag?(row["enabled"])
    end

    # NOTE: a boolean column read through the db service is 0/1 on SQLite and true/false on
    # PostgreSQL, and 0 is truthy in Ruby: never test such a column with `if`.
    def flag?(value)
      [true, 1, "1", "t", "true"].include?(value)
    end

    # `text` on one line: runs of whitespace and control characters (CR, LF, NUL, ESC...)
    # become one space. Names and titles come from users and go into SMS, push bodies and
    # subjects, which must stay one line.
    def one_line(text)
      text.to_s.scrub.gsub(/[[:space:][:cntrl:]]+/, " ").strip
    end

    # A name for a message: `name` on one line, or `fallback` when that leaves nothing.
    def name_or(name, fallback)
      flat = one_line(name)
      flat.empty? ? fallback : flat
    end

    # `text` on one line, cut to at most `max_chars` characters with "…" when longer.
    # Cuts between grapheme clusters, so an emoji or accented letter is never split,
    # except a first cluster longer than the limit (a run of combining marks): that one
    # is cut between codepoints, so the excerpt is never "…" alone.
    def excerpt(text, max_chars)
      flat = one_line(text)
      return flat if flat.length <= max_chars
      return flat[0, max_chars] if max_chars <= 1

      kept = +""
      flat.each_grapheme_cluster do |cluster|
        break if kept.length + cluster.length > max_chars - 1

        kept << cluster
      end
      kept = flat[0, max_chars - 1] if kept.strip.empty?
      "#{kept.rstrip}…"
    end
  end
end
