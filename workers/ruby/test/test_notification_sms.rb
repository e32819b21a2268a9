# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/send_sms_worker"
require_relative "../workers/send_sms_message_worker"
require_relative "support/notification_host"

class TestNotificationSms < Minitest::Test
  include NotificationJobs

  N = SimbiWorker::Notify
  W = NotificationWorker
  CLEAR_OPT_IN = "UPDATE users SET sms_opt_in = :sms_opt_in WHERE id = :id"

  def setup
    @host = NotificationHost.new
    @host.user(7, "Ada", phone: "+1 (415) 555-0100", sms_opt_in: 1)
  end

  # -- SendSmsWorker --------------------------------------------------------------------

  def test_texts_the_users_phone_number_in_e164
    value, skipped, = run_worker(SendSmsWorker, 7, "Your Simbi code is 1234")

    assert_nil skipped
    assert_equal [["db", "query", { sql: N::USER_SQL, params: { id: 7 } }],
                  ["sms", "send", { to: "+14155550100", body: "Your Simbi code is 1234" }]],
                 @host.calls
    assert_equal({ "user_id" => 7, "sid" => "SM1", "delivered" => "outbox" }, value)
  end

  def test_no_phone_no_opt_in_or_no_user_is_a_skip
    @host.user(8, "Grace", phone: nil, sms_opt_in: 1)
    @host.user(9, "Linus", phone: "  ", sms_opt_in: true)
    @host.user(10, "Mary", phone: "+447700900123", sms_opt_in: 0)
    @host.user(11, "Alan", phone: "+447700900124", sms_opt_in: false)
    @host.user(12, "Joan", phone: "+447700900125", sms_opt_in: 1, deleted_at: "2026-01-01")

    reasons = [8, 9, 10, 11, 12, 13].map { |id| run_worker(SendSmsWorker, id, "hi")[1] }

    assert_equal ["user 8 has no phone number", "user 9 has no phone number",
                  "user 10 has not opted in to SMS", "user 11 has not opted in to SMS",
                  "user 12 is deleted", "user 13 does not exist"], reasons
    assert_empty @host.calls_to("sms", "send")
  end

  def test_an_invalid_number_is_permanent_and_keeps_the_opt_in
    @host.on("sms.send") { raise host_error("InvalidNumber", retryable: false, message: "21211") }

    error = assert_raises(SimbiWorker::PermanentError) { run_worker(SendSmsWorker, 7, "hi") }

    assert_equal "SMS to user 7 refused (InvalidNumber): 21211", error.message
    assert_empty @host.executed
    assert_equal 1, @host.users[7]["sms_opt_in"]
  end

  def test_unsubscribed_clears_the_opt_in_and_fails_the_job_permanently
    @host.on("sms.send") do
      raise host_error("Unsubscribed", retryable: false, message: "21610: replied STOP")
    end

    done = done_message("SendSmsWorker", 7, "hi")

    assert_equal [{ sql: CLEAR_OPT_IN, params: { sms_opt_in: false, id: 7 } }], @host.executed
    assert_equal false, @host.users[7]["sms_opt_in"]
    assert_equal({ "class" => "NotificationWorker::SmsRefused", "retryable" => false,
                   "message" => "SMS to user 7 refused (Unsubscribed): 21610: replied STOP" },
                 done["error"].slice("class", "retryable", "message"))
  end

  def test_a_rate_limit_propagates_retryable_with_the_hosts_retry_after
    limited = host_error("RateLimited", retryable: true, retry_after_seconds: 30)
    @host.on("sms.send") { raise limited }

    error = assert_raises(SimbiWorker::HostError) { run_worker(SendSmsWorker, 7, "hi") }
    assert_same limited, error

    done = done_message("SendSmsWorker", 7, "hi")
    assert_equal({ "class" => "RateLimited", "retryable" => true, "retry_after_seconds" => 30 },
                 done["error"].slice("class", "retryable", "retry_after_seconds"))
    assert_empty @host.executed
  end

  def test_an_outage_retries_and_a_rejection_is_permanent_with_the_providers_class
    @host.on("sms.send") { raise host_error("ProviderUnavailable", retryable: true) }
    assert_equal [true, "ProviderUnavailable"],
                 done_message("SendSmsWorker", 7, "hi")["error"].values_at("retryable", "class")

    @host.on("sms.send") { raise host_error("ProviderRejected", retryable: false) }
    assert_equal [false, "ProviderRejected"],
                 done_message("SendSmsWorker", 7, "hi")["error"].values_at("retryable", "class")
    assert_empty @host.executed
  end

  def test_a_blank_body_or_bad_user_id_is_permanent_without_host_calls
    [[7, ""], [7, nil], [7, 5], %w[7 hi], [0, "hi"]].each do |args|
      assert_raises(SimbiWorker::PermanentError) { run_worker(SendSmsWorker, *args) }
    end
    assert_empty @host.calls
  end

  # -- SendSmsMessageWorker -------------------------------------------------------------

  def talk_with(*recipients)
    @host.talk(5, 7, *recipients)
  end

  def grace_and_linus
    @host.user(8, "Grace", phone: "+447700900123", sms_opt_in: 1)
    @host.user(9, "Linus", phone: "+358401234567", sms_opt_in: true)
    talk_with(8, 9)
  end

  def test_three_messages_in_the_same_talk_within_ten_minutes_send_one_sms
    @host.user(8, "Grace", phone: "+447700900123", sms_opt_in: 1)
    talk_with(8)
    (11..14).each { |id| @host.message(id, 5, 7, "Hello there #{id}") }

    first, = with_app_url(nil) { run_worker(SendSmsMessageWorker, 11) }
    @host.advance(120)
    second = run_worker(SendSmsMessageWorker, 12)[1]
    @host.advance(479) # 599 s after the first
    third = run_worker(SendSmsMessageWorker, 13)[1]

    assert_equal [{ to: "+447700900123",
                    body: "Ada sent you a message on Simbi: Hello there 11 " \
                          "http://localhost:3000/talks/5" }], @host.calls_to("sms", "send")
    assert_equal [{ "user_id" => 8, "sid" => "SM1" }], first["sent"]
    assert_equal "message 12: user 8 had an SMS about talk 5 within the last 10 minutes", second
    assert_equal "message 13: user 8 had an SMS about talk 5 within the last 10 minutes", third
    assert_equal [{ command: "SET", keys: ["sms:talk:5:user:8"], args: ["pending", "NX", "EX", 120] },
                  { command: "SET", keys: ["sms:talk:5:user:8"], args: ["sent", "EX", 600] },
                  { command: "GET", keys: ["sms:talk:5:user:8"], args: [] }],
                 @host.calls_to("redis", "call").uniq

    @host.advance(1)
    run_worker(SendSmsMessageWorker, 14)
    assert_equal 2, @host.calls_to("sms", "send").size
  end

  def test_the_link_comes_from_simbi_app_url_and_the_excerpt_is_at_most_80_characters
    @host.user(8, "Grace", phone: "+447700900123", sms_opt_in: 1)
    talk_with(8)
    @host.message(11, 5, 7, "x" * 81)

    with_app_url("https://simbi.example/") { run_worker(SendSmsMessageWorker, 11) }

    body = @host.calls_to("sms", "send").first[:body]
    assert_equal "Ada sent you a message on Simbi: #{'x' * 79}… https://simbi.example/talks/5",
                 body
  end

  def test_only_recipients_with_a_phone_the_opt_in_and_message_sms_on_are_texted
    grace_and_linus
    @host.user(10, "Mary", phone: nil, sms_opt_in: 1)
    @host.user(12, "Joan", phone: "+15550000000", sms_opt_in: 0)
    @host.user(13, "Alan", phone: "+15550000001", sms_opt_in: 1)
    @host.preference(13, "sms", "messages", 0)
    talk_with(10, 12, 13)
    @host.message(11, 5, 7, "Hi all")

    value, skipped, log = run_worker(SendSmsMessageWorker, 11)

    assert_nil skipped
    assert_equal ["+447700900123", "+358401234567"], @host.calls_to("sms", "send").map { _1[:to] }
    assert_equal [{ "user_id" => 8, "sid" => "SM1" }, { "user_id" => 9, "sid" => "SM2" }],
                 value["sent"]
    assert_equal [[10, "user 10 has no phone number"], [12, "user 12 has not opted in to SMS"],
                  [13, "user 13 turned off message SMS"]],
                 (value["skipped"].map { |o| o.values_at("user_id", "reason") })
    assert_equal %w[sms:talk:5:user:8 sms:talk:5:user:9], @host.redis.keys
    assert_includes log, "skip recipient: user 12 has not opted in to SMS"
  end

  def test_a_retryable_error_releases_that_recipients_key_and_the_retry_texts_only_them
    grace_and_linus
    @host.message(11, 5, 7, "Hi")
    @host.on("sms.send") do |params|
      if params[:to] == "+358401234567"
        raise host_error("RateLimited", retryable: true, retry_after_seconds: 30)
      end

      { "sid" => "SM-grace", "delivered" => "outbox" }
    end

    done = done_message("SendSmsMessageWorker", 11)

    assert_equal [true, 30], done["error"].values_at("retryable", "retry_after_seconds")
    assert_includes @host.calls_to("redis", "call"),
                    { command: "DEL", keys: ["sms:talk:5:user:9"], args: [] }
    assert_equal ["sms:talk:5:user:8"], @host.redis.keys

    @host.on("sms.send") { { "sid" => "SM-linus", "delivered" => "outbox" } }
    value, = run_worker(SendSmsMessageWorker, 11)

    assert_equal [{ "user_id" => 9, "sid" => "SM-linus" }], value["sent"]
    assert_equal [8], (value["skipped"].map { |o| o["user_id"] })
    assert_equal({ "+447700900123" => 1, "+358401234567" => 2 },
                 @host.calls_to("sms", "send").map { |p| p[:to] }.tally)
  end

  def test_a_recipient_refused_for_good_does_not_stop_the_others
    grace_and_linus
    @host.user(10, "Mary", phone: "+15550000002", sms_opt_in: 1)
    talk_with(10)
    @host.message(11, 5, 7, "Hi")
    @host.on("sms.send") do |params|
      case params[:to]
      when "+447700900123" then raise host_error("InvalidNumber", retryable: false)
      when "+358401234567" then raise host_error("Unsubscribed", retryable: false)
      else { "sid" => "SM-mary", "delivered" => "outbox" }
      end
    end

    value, skipped, log = run_worker(SendSmsMessageWorker, 11)

    assert_nil skipped
    assert_equal [{ "user_id" => 10, "sid" => "SM-mary" }], value["sent"]
    assert_equal [[8, "InvalidNumber"], [9, "Unsubscribed"]],
                 (value["failed"].map { |o| o.values_at("user_id", "error") })
    assert_equal [{ sql: CLEAR_OPT_IN, params: { sms_opt_in: false, id: 9 } }], @host.executed
    assert_equal [1, false], [@host.users[8]["sms_opt_in"], @host.users[9]["sms_opt_in"]]
    assert_includes log, "recipient 8 failed: SMS to user 8 refused (InvalidNumber)"
  end

  def test_when_every_recipient_is_refused_for_good_the_job_is_permanent
    grace_and_linus
    @host.message(11, 5, 7, "Hi")
    @host.on("sms.send") do |params|
      raise host_error("InvalidNumber", retryable: false, message: "bad #{params[:to][-3..]}")
    end

    done = done_message("SendSmsMessageWorker", 11)

    assert_equal false, done["error"]["retryable"]
    assert_equal "message 11: every recipient failed: " \
                 "user 8: SMS to user 8 refused (InvalidNumber): bad 123; " \
                 "user 9: SMS to user 9 refused (InvalidNumber): bad 567",
                 done["error"]["message"]
  end

  def test_a_missing_message_or_nobody_to_text_is_a_skip
    assert_equal "message 11 does not exist", run_worker(SendSmsMessageWorker, 11)[1]

    @host.user(8, "Grace", phone: nil)
    talk_with(8)
    @host.message(11, 5, 7, "Hi")
    assert_equal "message 11: user 8 has no phone number", run_worker(SendSmsMessageWorker, 11)[1]
    assert_empty @host.calls_to("sms", "send")
    assert_empty @host.calls_to("redis", "call")
  end

  private

  def with_app_url(url)
    saved = ENV.fetch("SIMBI_APP_URL", nil)
    url.nil? ? ENV.delete("SIMBI_APP_URL") : ENV["SIMBI_APP_URL"] = url
    yield
  ensure
    saved.nil? ? ENV.delete("SIMBI_APP_URL") : ENV["SIMBI_APP_URL"] = saved
  end
end
