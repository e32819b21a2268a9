# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/slack_notifier_worker"
require_relative "support/fake_host"

class TestSlackNotifierWorker < Minitest::Test
  USER_QUERY = {
    sql: "SELECT id, first_name, last_name, email, deleted_at FROM users WHERE id = :id",
    params: { id: 7 }
  }.freeze
  POSTED = { "channel" => "signups", "delivered" => "outbox" }.freeze
  ADA = { "id" => 7, "first_name" => "Ada", "last_name" => "Lovelace",
          "email" => "ada@example.com", "deleted_at" => nil }.freeze

  def perform(*args, rows: [])
    @host = FakeHost.new("db.query" => { "rows" => rows }, "slack.post" => POSTED)
    SlackNotifierWorker.new.bind(host: @host, job_id: "job-1").perform(*args)
  end

  def test_posts_the_text_alone_when_there_is_no_user
    assert_equal POSTED, perform("signups", nil, "hello")
    assert_equal [["slack", "post", { channel: "signups", text: "hello", user_id: nil }]],
                 @host.calls
  end

  def test_mentions_the_user_by_id_name_and_email
    assert_equal POSTED, perform("signups", 7, "hello", rows: [ADA])

    text = "hello — user 7 Ada Lovelace <ada@example.com>"
    assert_equal [["db", "query", USER_QUERY],
                  ["slack", "post", { channel: "signups", text:, user_id: 7 }]],
                 @host.calls
  end

  def test_leaves_out_missing_name_parts_and_email
    perform("signups", 7, "hello", rows: [ADA.merge("last_name" => nil, "email" => nil)])

    assert_equal "hello — user 7 Ada", @host.calls.last[2][:text]
  end

  def test_a_deleted_user_still_posts_without_personal_details
    perform("signups", 7, "hello", rows: [ADA.merge("deleted_at" => "2026-11-30T10:00:00")])

    assert_equal [["db", "query", USER_QUERY],
                  ["slack", "post", { channel: "signups", text: "hello — user 7 (deleted)",
                                      user_id: 7 }]],
                 @host.calls
  end

  def test_a_missing_user_posts_as_deleted
    perform("signups", 7, "hello", rows: [])

    assert_equal "hello — user 7 (deleted)", @host.calls.last[2][:text]
  end

  def test_rejects_a_blank_or_non_string_channel_permanently_without_calling_the_host
    [nil, "", "  ", 5].each do |channel|
      error = assert_raises(SimbiWorker::PermanentError) { perform(channel, nil, "hello") }
      assert_equal "channel must be a non-empty String, got #{channel.inspect}", error.message
      assert_empty @host.calls
    end
  end

  def test_rejects_a_blank_or_non_string_text_permanently_without_calling_the_host
    [nil, "", { "a" => 1 }].each do |text|
      error = assert_raises(SimbiWorker::PermanentError) { perform("signups", 7, text) }
      assert_equal "text must be a non-empty String, got #{text.inspect}", error.message
      assert_empty @host.calls
    end
  end

  def test_an_unknown_channel_error_from_the_host_propagates_unchanged
    unknown = SimbiWorker::HostError.new(
      klass: "UnknownChannel", retryable: false,
      message: "unknown Slack channel 'nope' (known: errors, flags, payments, signups)"
    )
    host = FakeHost.new("slack.post" => unknown)
    worker = SlackNotifierWorker.new.bind(host:, job_id: "job-1")

    error = assert_raises(SimbiWorker::HostError) { worker.perform("nope", nil, "hello") }
    assert_same unknown, error
    assert_equal "UnknownChannel", error.klass
    refute_predicate error, :retryable?
  end
end
