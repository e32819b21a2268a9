# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/send_push_worker"
require_relative "../workers/send_push_message_worker"
require_relative "support/notification_host"

class TestNotificationPush < Minitest::Test
  include NotificationJobs

  N = SimbiWorker::Notify
  W = NotificationWorker

  def setup
    @host = NotificationHost.new
    @host.user(7, "Ada")
    @host.device(7, "tok-a", "fcm")
    @host.device(7, "tok-b", "onesignal")
  end

  # -- SendPushWorker -------------------------------------------------------------------

  def test_pushes_to_every_device_with_the_category_title_and_data_as_strings
    data = { "talk_id" => 5, "urgent" => true, "ratio" => 0.5, "kind" => "chat", "gone" => nil }
    value, skipped, = run_worker(SendPushWorker, 7, "messages", "Hello Ada", data)

    assert_nil skipped
    assert_equal [
      ["db", "query", { sql: N::USER_SQL, params: { id: 7 } }],
      ["db", "query", { sql: N::PREFERENCE_SQL,
                        params: { user_id: 7, channel: "push", category: "messages" } }],
      ["db", "query", { sql: W::DEVICES_SQL, params: { user_id: 7 } }],
      ["push", "send", { devices: [{ token: "tok-a", provider: "fcm" },
                                   { token: "tok-b", provider: "onesignal" }],
                         title: "New message", body: "Hello Ada",
                         data: { "talk_id" => "5", "urgent" => "true", "ratio" => "0.5",
                                 "kind" => "chat" } }]
    ], @host.calls
    assert_equal({ "user_id" => 7, "devices" => 2, "sent" => 2, "removed_devices" => 0 }, value)
  end

  def test_null_data_pushes_an_empty_object_and_account_pushes_are_titled_simbi
    run_worker(SendPushWorker, 7, "account", "Your password changed", nil)

    push = @host.calls_to("push", "send").first
    assert_equal "Simbi", push[:title]
    assert_equal({}, push[:data])
  end

  def test_each_category_has_its_own_title
    titles = W::PUSH_CATEGORIES.map do |category|
      run_worker(SendPushWorker, 7, category, "x", {})
      @host.calls_to("push", "send").last[:title]
    end

    assert_equal ["New message", "New compliment", "Someone asked for your help", "New match",
                  "New follower", "Leaderboard", "Simbi"], titles
  end

  def test_devices_the_provider_reports_unregistered_are_deleted
    @host.on("push.send") do |_params|
      { "sent" => 1, "unregistered" => %w[tok-b tok-of-someone-else], "delivered" => "fcm" }
    end

    value, = run_worker(SendPushWorker, 7, "messages", "Hi", {})

    assert_equal [{ sql: "DELETE FROM devices WHERE token = :token", params: { token: "tok-b" } }],
                 @host.executed
    assert_equal ["tok-a"], (@host.devices.map { |d| d["token"] })
    assert_equal 1, value["removed_devices"]
  end

  def test_an_opt_out_of_the_category_skips_without_pushing
    @host.preference(7, "push", "messages", 0) # SQLite's false

    _, skipped, = run_worker(SendPushWorker, 7, "messages", "Hi", {})

    assert_equal "user 7 turned off messages push notifications", skipped
    assert_empty @host.calls_to("push", "send")
  end

  def test_postgres_false_also_opts_out_and_an_enabled_row_or_other_category_does_not
    @host.preference(7, "push", "matches", false)
    @host.preference(7, "push", "messages", 1)
    @host.preference(7, "email", "followers", 0)

    assert_equal "user 7 turned off matches push notifications",
                 run_worker(SendPushWorker, 7, "matches", "Hi", {})[1]
    assert_nil run_worker(SendPushWorker, 7, "messages", "Hi", {})[1]
    assert_nil run_worker(SendPushWorker, 7, "followers", "Hi", {})[1]
    assert_equal 2, @host.calls_to("push", "send").size
  end

  def test_a_user_without_devices_is_skipped
    @host.devices.clear

    _, skipped, = run_worker(SendPushWorker, 7, "messages", "Hi", {})

    assert_equal "user 7 has no devices", skipped
    assert_empty @host.calls_to("push", "send")
  end

  def test_a_deleted_or_missing_user_is_skipped_before_reading_devices
    @host.user(8, "Grace", deleted_at: "2026-11-30T10:00:00")

    assert_equal "user 8 is deleted", run_worker(SendPushWorker, 8, "messages", "Hi", {})[1]
    assert_equal "user 9 does not exist", run_worker(SendPushWorker, 9, "messages", "Hi", {})[1]
    assert_equal [N::USER_SQL, N::USER_SQL], (@host.calls.map { |_, _, params| params[:sql] })
  end

  def test_an_unknown_category_is_permanent_and_lists_the_known_ones
    error = assert_raises(SimbiWorker::PermanentError) do
      run_worker(SendPushWorker, 7, "promotions", "Hi", {})
    end

    assert_equal 'unknown push category "promotions"; known: messages, compliments, favors, ' \
                 "matches, followers, leaderboard, account", error.message
    assert_empty @host.calls
  end

  def test_nested_data_is_permanent_and_names_the_key
    error = assert_raises(SimbiWorker::PermanentError) do
      run_worker(SendPushWorker, 7, "messages", "Hi", { "talk_id" => 5, "meta" => { "a" => 1 } })
    end

    assert_equal "data.meta must be a string, number or boolean (push data is flat), " \
                 'got Hash {"a"=>1}', error.message
    assert_empty @host.calls
  end

  def test_data_that_is_not_an_object_and_bad_ids_or_messages_are_permanent
    [[7, "messages", "Hi", [1, 2]], [7, "messages", "Hi", "x"], ["7", "messages", "Hi", {}],
     [nil, "messages", "Hi", {}], [7, "messages", " ", {}], [7, "messages", nil, {}]].each do |args|
      assert_raises(SimbiWorker::PermanentError) { run_worker(SendPushWorker, *args) }
    end
    assert_empty @host.calls
  end

  def test_a_provider_outage_propagates_as_the_hosts_retryable_error
    outage = host_error("ProviderUnavailable", retryable: true, retry_after_seconds: 12)
    @host.on("push.send") { raise outage }

    done = done_message("SendPushWorker", 7, "messages", "Hi", {})

    assert_equal({ "class" => "ProviderUnavailable", "retryable" => true,
                   "retry_after_seconds" => 12 },
                 done["error"].slice("class", "retryable", "retry_after_seconds"))
  end

  # -- SendPushMessageWorker ------------------------------------------------------------

  def talk_of_three(body = "See you at noon")
    @host.user(8, "Grace")
    @host.user(9, "Linus")
    @host.device(8, "tok-g")
    @host.device(9, "tok-l", "onesignal")
    @host.talk(5, 7, 8, 9)
    @host.message(11, 5, 7, body)
  end

  def test_a_message_is_pushed_to_every_other_participant_as_sender_and_excerpt
    talk_of_three
    value, skipped, = run_worker(SendPushMessageWorker, 11)

    assert_nil skipped
    data = { "talk_id" => "5", "message_id" => "11" }
    assert_equal [{ devices: [{ token: "tok-g", provider: "fcm" }], title: "New message",
                    body: "Ada: See you at noon", data: },
                  { devices: [{ token: "tok-l", provider: "onesignal" }], title: "New message",
                    body: "Ada: See you at noon", data: }],
                 @host.calls_to("push", "send")
    assert_equal [8, 9], (value["sent"].map { |o| o["user_id"] })
    assert_equal [[], []], value.values_at("skipped", "failed")
  end

  def test_the_excerpt_is_at_most_100_characters
    talk_of_three("#{'word ' * 40}end")
    run_worker(SendPushMessageWorker, 11)

    body = @host.calls_to("push", "send").first[:body]
    excerpt = body.delete_prefix("Ada: ")
    assert_equal 100, excerpt.length
    assert_equal "#{('word ' * 20).strip}…", excerpt
  end

  def test_a_recipient_who_opted_out_is_listed_as_skipped_and_the_other_is_pushed
    talk_of_three
    @host.preference(8, "push", "messages", 0)

    value, skipped, log = run_worker(SendPushMessageWorker, 11)

    assert_nil skipped
    assert_equal [[{ token: "tok-l", provider: "onesignal" }]],
                 (@host.calls_to("push", "send").map { |p| p[:devices] })
    assert_equal [{ "user_id" => 8, "reason" => "user 8 turned off messages push notifications" }],
                 value["skipped"]
    assert_includes log, "skip recipient: user 8 turned off messages push notifications"
  end

  def test_when_nobody_can_be_pushed_the_job_is_a_skip_with_every_reason
    talk_of_three
    @host.devices.clear

    _, skipped, = run_worker(SendPushMessageWorker, 11)

    assert_equal "message 11: user 8 has no devices; user 9 has no devices", skipped
  end

  def test_a_missing_message_or_a_talk_without_others_is_skipped
    assert_equal "message 11 does not exist", run_worker(SendPushMessageWorker, 11)[1]

    @host.talk(6, 7)
    @host.message(12, 6, 7, "Anyone?")
    assert_equal "message 12: nobody else to notify", run_worker(SendPushMessageWorker, 12)[1]
    assert_empty @host.calls_to("push", "send")
  end
end
