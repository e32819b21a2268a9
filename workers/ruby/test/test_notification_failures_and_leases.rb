# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/send_push_message_worker"
require_relative "../workers/send_sms_message_worker"
require_relative "../workers/notify_match_worker"
require_relative "../workers/notify_new_follower_worker"
require_relative "../workers/slack_notifier_worker"
require_relative "support/notification_host"
require_relative "support/fake_host"

# rubocop:disable Metrics/AbcSize

# Fan-out past one recipient's failure, Redis leases, ids and hostile names.
class TestNotificationFailuresAndLeases < Minitest::Test
  include NotificationJobs

  def setup
    @host = NotificationHost.new
    @host.user(7, "Ada", phone: "+14155550100", sms_opt_in: 1)
    @host.user(8, "Grace", phone: "+14155550101", sms_opt_in: 1)
    @host.user(9, "Linus", phone: "+14155550102", sms_opt_in: 1)
    @host.device(8, "tok-g")
    @host.device(9, "tok-l")
    @host.talk(5, 7, 8, 9)
    @host.message(11, 5, 7, "Hello")
  end

  # push.send fails for the devices of `user_id` with a HostError.
  def fail_push_for(token, retryable:, klass: "ProviderMisconfigured")
    @host.on("push.send") do |params|
      raise host_error(klass, retryable:) if params[:devices].any? { |d| d[:token] == token }

      { "sent" => params[:devices].size, "unregistered" => [] }
    end
  end

  # -- 1. fan-out -----------------------------------------------------------------------

  def test_a_permanent_push_error_for_one_recipient_does_not_stop_the_others
    fail_push_for("tok-g", retryable: false)
    value, skipped, = run_worker(SendPushMessageWorker, 11)

    assert_nil skipped
    assert_equal([9], value["sent"].map { |o| o["user_id"] })
    assert_equal [{ "user_id" => 8, "error" => "ProviderMisconfigured",
                    "message" => "ProviderMisconfigured from provider" }], value["failed"]
  end

  def test_every_push_failing_permanently_is_permanent
    @host.on("push.send") { raise host_error("ProviderMisconfigured", retryable: false) }
    error = assert_raises(SimbiWorker::PermanentError) { run_worker(SendPushMessageWorker, 11) }
    assert_match(/\Amessage 11: every recipient failed/, error.message)
  end

  def test_a_retryable_push_error_is_raised_after_everyone_was_tried
    fail_push_for("tok-g", retryable: true, klass: "ProviderUnavailable")
    error = assert_raises(SimbiWorker::HostError) { run_worker(SendPushMessageWorker, 11) }
    assert_equal "ProviderUnavailable", error.klass
    assert_equal 2, @host.calls_to("push", "send").size # Linus was still pushed to
  end

  def test_a_match_push_failing_for_one_side_still_tells_the_other
    @host.matches[3] = { "id" => 3, "user_a_id" => 8, "user_b_id" => 9 }
    fail_push_for("tok-g", retryable: false)
    value, = run_worker(NotifyMatchWorker, 3)
    assert_equal([9], value["sent"].map { |o| o["user_id"] })
    assert_equal([8], value["failed"].map { |o| o["user_id"] })
  end

  def test_a_retryable_sms_error_texts_the_others_first_and_the_retry_only_the_failed
    @host.on("sms.send") do |params|
      raise host_error("RateLimited", retryable: true) if params[:to] == "+14155550101"

      { "sid" => "SM-#{params[:to]}" }
    end
    assert_raises(SimbiWorker::HostError) { run_worker(SendSmsMessageWorker, 11) }
    assert_equal(%w[+14155550101 +14155550102], @host.calls_to("sms", "send").map { |p| p[:to] })

    @host.on("sms.send") { |params| { "sid" => "SM-#{params[:to]}" } }
    value, = run_worker(SendSmsMessageWorker, 11)
    assert_equal([8], value["sent"].map { |o| o["user_id"] })
    assert_equal([9], value["skipped"].map { |o| o["user_id"] })
  end

  # -- 2. Redis leases ------------------------------------------------------------------

  def kill_mid_send(key)
    # What a run killed after its SET NX leaves: "pending" for the lease, never settled.
    @host.call("redis", "call", { command: "SET", keys: [key], args: ["pending", "NX", "EX", 120] })
  end

  def test_an_sms_lease_of_a_killed_run_retries_then_lapses_and_sends_once
    @host.talk(6, 7, 8)
    @host.message(12, 6, 7, "Hi")
    kill_mid_send("sms:talk:6:user:8")

    error = assert_raises(SimbiWorker::RetryableError) { run_worker(SendSmsMessageWorker, 12) }
    assert_equal "sms:talk:6:user:8 is being sent by another run; retrying", error.message
    assert_empty @host.calls_to("sms", "send")

    @host.advance(120)
    value, = run_worker(SendSmsMessageWorker, 12)
    assert_equal([8], value["sent"].map { |o| o["user_id"] })
    assert_equal "sent", @host.redis.dig("sms:talk:6:user:8", :value)
    assert_equal 600, @host.redis.dig("sms:talk:6:user:8", :ttl_seconds)

    _, skipped, = run_worker(SendSmsMessageWorker, 12)
    assert_match(/had an SMS about talk 6/, skipped)
    assert_equal 1, @host.calls_to("sms", "send").size
  end

  def test_a_follow_lease_of_a_killed_run_retries_then_lapses_and_pushes_once
    @host.follows[21] = { "id" => 21, "follower_id" => 7, "followed_id" => 8 }
    kill_mid_send("follow:notified:7:8")

    assert_raises(SimbiWorker::RetryableError) { run_worker(NotifyNewFollowerWorker, 21) }
    @host.advance(120)
    value, skipped, = run_worker(NotifyNewFollowerWorker, 21)
    assert_nil skipped
    assert_equal 8, value["user_id"]
    assert_equal 86_400, @host.redis.dig("follow:notified:7:8", :ttl_seconds)

    _, skipped, = run_worker(NotifyNewFollowerWorker, 21)
    assert_equal "user 8 was told about follower 7 within the last day", skipped
    assert_equal 1, @host.calls_to("push", "send").size
  end

  # -- 4. ids ---------------------------------------------------------------------------

  def test_a_bignum_id_is_permanent_naming_the_argument
    done = done_message("SendPushMessageWorker", 2**64)
    assert_equal false, done["error"]["retryable"]
    assert_equal "message_id must be a positive integer id no larger than 2**63-1, " \
                 "got Integer #{2**64}", done["error"]["message"]
  end

  # -- 5. hostile names -----------------------------------------------------------------

  def test_names_in_push_and_sms_bodies_are_one_line_and_blank_names_fall_back
    @host.users[7]["first_name"] = "Ada\nCall +1-900 now\u0007"
    run_worker(SendPushMessageWorker, 11)
    assert_equal "Ada Call +1-900 now: Hello", @host.calls_to("push", "send").first[:body]

    @host.users[7]["first_name"] = " \n"
    run_worker(SendSmsMessageWorker, 11)
    assert @host.calls_to("sms", "send").first[:body].start_with?("Someone sent you a message")
  end

  def test_excerpt_never_returns_the_ellipsis_alone
    long_cluster = "e#{"\u0301" * 20}" # one grapheme of 21 codepoints
    text = SimbiWorker::Notify.excerpt("#{long_cluster} tail", 10)
    assert_equal 10, text.length
    assert_equal "#{long_cluster[0, 9]}…", text
    assert_equal "ab…", SimbiWorker::Notify.excerpt("ab cd ef", 3)
  end

  # -- 3. Slack -------------------------------------------------------------------------

  def slack(user_id, row = nil)
    host = FakeHost.new("db.query" => { "rows" => [row].compact }, "slack.post" => {})
    SlackNotifierWorker.new.bind(host:, job_id: "job-1").perform("signups", user_id, "hi")
    host.calls.last[2][:text]
  end

  def test_slack_escapes_names_and_email
    row = { "id" => 7, "first_name" => "<!channel>", "last_name" => "<https://evil.test|Bob> &",
            "email" => "x@evil.test|Click <here>", "deleted_at" => nil }
    assert_equal "hi — user 7 &lt;!channel&gt; &lt;https://evil.test|Bob&gt; &amp; " \
                 "(x@evil.test|Click &lt;here&gt;)", slack(7, row)
    assert_equal "hi — user 7 Ada <ada@example.com>",
                 slack(7, row.merge("first_name" => "Ada", "last_name" => nil,
                                    "email" => "ada@example.com"))
  end

  def test_slack_user_id_must_be_nil_or_a_bigint_id
    [0, -1, "7", 2**63, 1.5].each do |bad|
      error = assert_raises(SimbiWorker::PermanentError) { slack(bad) }
      assert_match(/\Auser_id must be nil or a positive Integer id/, error.message)
    end
    assert_equal "hi", slack(nil)
  end
end
# rubocop:enable Metrics/AbcSize
