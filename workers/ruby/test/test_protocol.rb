# frozen_string_literal: true

require "minitest/autorun"
require "yaml"
require_relative "support/child"

# The real child over its pipes, driven as the Python host drives it (docs/protocol.md).
class TestProtocol < Minitest::Test
  # The shipped workers are whatever queues.yaml gives the ruby runtime: the host refuses
  # a child whose ready list differs, so this is the list to hold the child to.
  QUEUES_FILE = File.expand_path("../../../queues.yaml", __dir__)
  SHIPPED_NAMES = YAML.safe_load_file(QUEUES_FILE)["workers"]
                      .select { |_name, spec| spec["runtime"] == "ruby" }.keys.sort.freeze
  FIXTURE_NAMES = (%w[CallingWorker ChattyWorker EchoWorker FailingWorker OptionalArgsWorker
                      SkippingWorker] + SHIPPED_NAMES).sort.freeze

  def setup
    @child = Child.new
    @ready = @child.read_message
  end

  def teardown
    @child.finish
  end

  def test_ready_comes_first_and_lists_the_workers_sorted
    assert_equal({ "type" => "ready", "protocol" => 1, "runtime" => "ruby",
                   "version" => RUBY_VERSION, "pid" => @child.pid, "workers" => FIXTURE_NAMES },
                 @ready)
  end

  def test_without_extra_workers_ready_lists_only_the_shipped_ones_and_eof_exits_zero
    child = Child.new(extra_workers: nil)

    assert_equal SHIPPED_NAMES, child.read_message["workers"]
    status, rest, = child.finish
    assert_equal 0, status.exitstatus
    assert_equal "", rest
  end

  def test_a_slack_job_makes_its_host_calls_and_returns_the_posted_value
    @child.send_message({ type: "job", job_id: "job-7", worker: "SlackNotifierWorker",
                          args: ["signups", 7, "hello"], attempt: 2 })

    query = { "sql" => SlackNotifierWorker::USER_SQL, "params" => { "id" => 7 } }
    assert_equal({ "type" => "call", "call_id" => 1, "job_id" => "job-7", "service" => "db",
                   "method" => "query", "params" => query },
                 @child.read_message)

    @child.send_message({ type: "reply", call_id: 1,
                          value: { rows: [{ id: 7, first_name: "Ada", last_name: "Lovelace" }] } })
    post = { "channel" => "signups", "text" => "hello — user 7 Ada Lovelace", "user_id" => 7 }
    assert_equal({ "type" => "call", "call_id" => 2, "job_id" => "job-7", "service" => "slack",
                   "method" => "post", "params" => post },
                 @child.read_message)

    posted = { "channel" => "signups", "delivered" => "outbox" }
    @child.send_message({ type: "reply", call_id: 2, value: posted })
    assert_equal({ "type" => "done", "job_id" => "job-7", "value" => posted },
                 @child.read_message)
  end

  def test_an_unknown_channel_reply_fails_the_job_permanently_with_the_hosts_message
    @child.run_job("SlackNotifierWorker", ["nope", nil, "hello"])
    message = "unknown Slack channel 'nope' (known: errors, signups)"
    error = { class: "UnknownChannel", message:, retryable: false }
    @child.send_message({ type: "reply", call_id: 1, error: })
    error = @child.read_message.fetch("error")

    assert_equal ["UnknownChannel", message, false, nil],
                 error.values_at("class", "message", "retryable", "retry_after_seconds")
  end

  def test_call_ids_keep_increasing_across_jobs
    @child.run_job("CallingWorker", [[["db", "query", {}]]])
    @child.send_message({ type: "reply", call_id: 1, value: 1 })
    assert_equal [1], @child.read_message["value"]

    second = @child.run_job("CallingWorker", [[["db", "query", {}]]], job_id: "job-2")
    assert_equal 2, second["call_id"]
  end

  def test_a_permanent_error_is_not_retryable_and_carries_a_backtrace
    error = @child.run_job("FailingWorker", ["permanent"])["error"]

    assert_equal ["SimbiWorker::PermanentError", "bad input permanent", false],
                 error.values_at("class", "message", "retryable")
    assert_match(/fixture_workers\.rb:\d+:in `perform'/, error["backtrace"].first)
  end

  def test_any_other_exception_is_retryable
    error = @child.run_job("FailingWorker", ["network"])["error"]

    assert_equal ["RuntimeError", "flaky network", true, nil],
                 error.values_at("class", "message", "retryable", "retry_after_seconds")
  end

  def test_a_skip_is_done_with_a_null_value_and_the_reason
    assert_equal({ "type" => "done", "job_id" => "job-1", "value" => nil,
                   "skipped" => "user 7 is deleted" },
                 @child.run_job("SkippingWorker", [7]))
  end

  def test_a_wrong_argument_count_fails_permanently_naming_worker_and_counts
    error = @child.run_job("SlackNotifierWorker", %w[signups hello])["error"]

    assert_equal ["SimbiWorker::ArgumentCountError", false], error.values_at("class", "retryable")
    assert_equal "SlackNotifierWorker expects 3 argument(s) (channel, user_id, text), received 2",
                 error["message"]
  end

  def test_an_unknown_worker_fails_permanently_naming_it
    done = @child.run_job("NoSuchWorker", [])

    assert_equal ["SimbiWorker::UnknownWorkerError", false],
                 done["error"].values_at("class", "retryable")
    assert_match(/unknown worker "NoSuchWorker"; this Ruby child serves: CallingWorker, /,
                 done["error"]["message"])
  end

  def test_stray_output_of_a_worker_goes_to_stderr_never_stdout
    assert_equal({ "type" => "done", "job_id" => "job-c", "value" => "quiet" },
                 @child.run_job("ChattyWorker", [], job_id: "job-c"))
    assert_equal "x", @child.run_job("EchoWorker", ["x"])["value"]

    _, rest, log = @child.finish
    assert_equal "", rest
    ["stray puts", "stray print", "stray STDOUT", "stray write", "stray subprocess",
     "[ChattyWorker job-c] logged line"].each { |text| assert_includes log, "#{text}\n" }
  end

  def test_a_one_megabyte_argument_round_trips
    big = "é#{'x' * (1024 * 1024)}\u{1F600}"

    assert_equal big, @child.run_job("EchoWorker", [big])["value"]
    assert_equal "small", @child.run_job("EchoWorker", ["small"])["value"]
  end

  def test_an_unparseable_line_exits_two_with_the_reason_on_stderr
    @child.send_line("{not json")

    status, rest, log = @child.finish
    assert_equal 2, status.exitstatus
    assert_equal "", rest
    assert_match(/protocol violation: a line that is not JSON: \{not json$/, log)
  end
end
