# frozen_string_literal: true

require "minitest/autorun"
require_relative "../runtime/notify"
require_relative "support/notification_host"

class TestNotificationHelpers < Minitest::Test
  Notify = SimbiWorker::Notify

  def test_a_short_text_is_kept_on_one_line
    assert_equal "Hello there, Ada", Notify.excerpt("  Hello\n\tthere,   Ada \n", 20)
    assert_equal "", Notify.excerpt(nil, 20)
  end

  def test_a_long_text_is_cut_to_exactly_the_limit_with_an_ellipsis
    assert_equal "abcdefghi…", Notify.excerpt("abcdefghijk", 10)
    assert_equal "abcdefghij", Notify.excerpt("abcdefghij", 10)
    assert_equal "ab…", Notify.excerpt("ab cd", 4) # no space before the ellipsis
  end

  def test_an_emoji_made_of_several_code_points_is_never_split
    family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}" # 5 code points, 1 grapheme
    assert_equal "ab…", Notify.excerpt("ab#{family}cdef", 6)
    assert_equal "ab#{family}…", Notify.excerpt("ab#{family}cdef", 8)
  end

  def test_flags_read_sqlite_and_postgres_booleans
    assert_equal [true, true, false, false, false],
                 ([1, true, 0, false, nil].map { |value| Notify.flag?(value) })
  end

  def test_links_use_simbi_app_url_or_the_local_default
    saved = ENV.fetch("SIMBI_APP_URL", nil)
    ENV.delete("SIMBI_APP_URL")
    assert_equal "http://localhost:3000/talks/5", Notify.app_url("/talks/5")

    ENV["SIMBI_APP_URL"] = "https://simbi.example/"
    assert_equal "https://simbi.example/talks/5", Notify.app_url("/talks/5")
  ensure
    saved.nil? ? ENV.delete("SIMBI_APP_URL") : ENV["SIMBI_APP_URL"] = saved
  end

  def test_a_preference_row_decides_and_no_row_means_enabled
    host = NotificationHost.new
    host.preference(7, "push", "matches", 0)
    host.preference(7, "push", "messages", 1)

    assert_equal [false, true, true],
                 (%w[matches messages followers].map { |c| Notify.enabled?(host, 7, "push", c) })
    assert_equal({ sql: Notify::PREFERENCE_SQL,
                   params: { user_id: 7, channel: "push", category: "matches" } },
                 host.calls.first.last)
  end
end
