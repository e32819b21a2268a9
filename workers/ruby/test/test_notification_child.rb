# frozen_string_literal: true

require "minitest/autorun"
require_relative "support/child"
require_relative "../runtime/notify"
require_relative "../workers/notification_worker"

# The notification workers in the real child, over the wire as the host drives them.
class TestNotificationChild < Minitest::Test
  NAMES = %w[NotifyMatchWorker NotifyNewFollowerWorker SendPushMessageWorker SendPushWorker
             SendSmsMessageWorker SendSmsWorker].freeze

  def setup
    @child = Child.new(extra_workers: nil)
    @ready = @child.read_message
  end

  def teardown
    @child.finish
  end

  def reply(call_id, value)
    @child.send_message({ type: "reply", call_id:, value: })
    @child.read_message
  end

  def test_ready_announces_the_six_workers_but_not_their_abstract_parent
    assert_empty NAMES - @ready["workers"]
    refute_includes @ready["workers"], "NotificationWorker"
  end

  def test_a_push_job_over_the_wire_sends_string_data_and_deletes_an_unregistered_device
    @child.send_message({ type: "job", job_id: "job-3", worker: "SendPushWorker",
                          args: [7, "matches", "Hi", { "match_id" => 3 }], attempt: 1 })
    @child.read_message # the user
    reply(1, { "rows" => [{ "id" => 7, "first_name" => "Ada", "deleted_at" => nil }] })
    reply(2, { "rows" => [] }) # no preference row
    push = reply(3, { "rows" => [{ "token" => "tok-a", "provider" => "fcm" }] })

    assert_equal({ "devices" => [{ "token" => "tok-a", "provider" => "fcm" }],
                   "title" => "New match", "body" => "Hi", "data" => { "match_id" => "3" } },
                 push["params"])
    delete = reply(4, { "sent" => 0, "unregistered" => ["tok-a"], "delivered" => "fcm" })
    assert_equal({ "sql" => NotificationWorker::DELETE_DEVICE_SQL,
                   "params" => { "token" => "tok-a" } }, delete["params"])
    done = reply(5, { "rowcount" => 1 })
    assert_equal({ "user_id" => 7, "devices" => 1, "sent" => 0, "removed_devices" => 1 },
                 done["value"])
  end

  def test_an_sms_rate_limit_over_the_wire_fails_retryable_with_retry_after
    @child.send_message({ type: "job", job_id: "job-4", worker: "SendSmsWorker",
                          args: [7, "hi"], attempt: 1 })
    @child.read_message
    sms = reply(1, { "rows" => [{ "id" => 7, "phone" => "+14155550100", "sms_opt_in" => 1,
                                  "deleted_at" => nil }] })
    assert_equal({ "to" => "+14155550100", "body" => "hi" }, sms["params"])

    error = { "class" => "RateLimited", "message" => "429", "retryable" => true,
              "retry_after_seconds" => 30 }
    @child.send_message({ type: "reply", call_id: 2, error: })
    done = @child.read_message
    assert_equal error, done["error"].slice(*error.keys)
  end
end
