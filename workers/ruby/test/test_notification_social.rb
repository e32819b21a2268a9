# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/notify_match_worker"
require_relative "../workers/notify_new_follower_worker"
require_relative "support/notification_host"

class TestNotificationSocial < Minitest::Test
  include NotificationJobs

  def setup
    @host = NotificationHost.new
    @host.user(7, "Ada")
    @host.user(8, "Grace")
    @host.device(7, "tok-a")
    @host.device(8, "tok-g", "onesignal")
  end

  # -- NotifyMatchWorker ----------------------------------------------------------------

  def match(id = 3, user_a = 7, user_b = 8)
    @host.matches[id] = { "id" => id, "user_a_id" => user_a, "user_b_id" => user_b }
  end

  def test_a_match_pushes_to_both_people_each_naming_the_other
    match
    value, skipped, = run_worker(NotifyMatchWorker, 3)

    assert_nil skipped
    assert_equal [{ devices: [{ token: "tok-a", provider: "fcm" }], title: "New match",
                    body: "You matched with Grace on Simbi: say hello!",
                    data: { "match_id" => "3", "user_id" => "8" } },
                  { devices: [{ token: "tok-g", provider: "onesignal" }], title: "New match",
                    body: "You matched with Ada on Simbi: say hello!",
                    data: { "match_id" => "3", "user_id" => "7" } }],
                 @host.calls_to("push", "send")
    assert_equal [7, 8], (value["sent"].map { |o| o["user_id"] })
    assert_equal [{ sql: NotifyMatchWorker::MATCH_SQL, params: { id: 3 } }],
                 @host.calls_to("db", "query").first(1)
  end

  def test_one_side_opted_out_of_match_pushes_the_other_still_hears
    match
    @host.preference(8, "push", "matches", 0)

    value, = run_worker(NotifyMatchWorker, 3)

    assert_equal ["You matched with Grace on Simbi: say hello!"],
                 (@host.calls_to("push", "send").map { |p| p[:body] })
    assert_equal [{ "user_id" => 8, "reason" => "user 8 turned off matches push notifications" }],
                 value["skipped"]
  end

  def test_a_match_with_a_deleted_person_tells_nobody
    match
    @host.users[8]["deleted_at"] = "2026-11-30T10:00:00"

    _, skipped, = run_worker(NotifyMatchWorker, 3)

    assert_equal "match 3: the other person, user 8, is gone; user 8 is deleted", skipped
    assert_empty @host.calls_to("push", "send")
  end

  def test_a_missing_or_self_match_is_skipped
    assert_equal "match 3 does not exist", run_worker(NotifyMatchWorker, 3)[1]

    match(4, 7, 7)
    assert_equal "match 4 pairs user 7 with themselves", run_worker(NotifyMatchWorker, 4)[1]
    assert_empty @host.calls_to("push", "send")
  end

  # -- NotifyNewFollowerWorker ----------------------------------------------------------

  def follow(id, follower = 7, followed = 8)
    @host.follows[id] = { "id" => id, "follower_id" => follower, "followed_id" => followed }
  end

  def test_a_follow_pushes_to_the_person_followed
    follow(21)
    value, skipped, = run_worker(NotifyNewFollowerWorker, 21)

    assert_nil skipped
    assert_equal [{ command: "SET", keys: ["follow:notified:7:8"],
                    args: ["pending", "NX", "EX", 120] },
                  { command: "SET", keys: ["follow:notified:7:8"], args: ["sent", "EX", 86_400] }],
                 @host.calls_to("redis", "call")
    assert_equal [{ devices: [{ token: "tok-g", provider: "onesignal" }], title: "New follower",
                    body: "Ada started following you on Simbi",
                    data: { "follow_id" => "21", "follower_id" => "7" } }],
                 @host.calls_to("push", "send")
    assert_equal({ "user_id" => 8, "devices" => 1, "sent" => 1, "removed_devices" => 0 }, value)
  end

  def test_the_same_pair_is_notified_once_a_day
    follow(21)
    follow(22) # unfollowed and followed again
    run_worker(NotifyNewFollowerWorker, 21)
    @host.advance(86_399)

    _, skipped, = run_worker(NotifyNewFollowerWorker, 22)

    assert_equal "user 8 was told about follower 7 within the last day", skipped
    assert_equal 1, @host.calls_to("push", "send").size

    @host.advance(1)
    assert_nil run_worker(NotifyNewFollowerWorker, 22)[1]
    assert_equal 2, @host.calls_to("push", "send").size
  end

  def test_a_failed_push_frees_the_pair_so_the_retry_pushes
    follow(21)
    @host.on("push.send") { raise host_error("ProviderUnavailable", retryable: true) }

    done = done_message("NotifyNewFollowerWorker", 21)

    assert_equal [true, "ProviderUnavailable"], done["error"].values_at("retryable", "class")
    assert_equal({ command: "DEL", keys: ["follow:notified:7:8"], args: [] },
                 @host.calls_to("redis", "call").last)
    assert_empty @host.redis

    @host.on("push.send") { { "sent" => 1, "unregistered" => [], "delivered" => "outbox" } }
    assert_nil run_worker(NotifyNewFollowerWorker, 21)[1]
  end

  def test_a_missing_follow_a_gone_follower_or_an_opt_out_is_skipped
    assert_equal "follow 21 does not exist", run_worker(NotifyNewFollowerWorker, 21)[1]

    follow(22, 9, 8)
    assert_equal "the follower, user 9, is gone", run_worker(NotifyNewFollowerWorker, 22)[1]

    follow(23)
    @host.preference(8, "push", "followers", false)
    assert_equal "user 8 turned off followers push notifications",
                 run_worker(NotifyNewFollowerWorker, 23)[1]
    assert_empty @host.calls_to("push", "send")
  end
end
