# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require "runtime/runner"
require_relative "fixtures/workers/fixture_workers"

# Runner and host client over in-memory pipes: the error shapes, without a child process.
class TestRunner < Minitest::Test
  class DeepFailureWorker < SimbiWorker::Base
    def perform(depth)
      raise "deep" if depth.zero?

      perform(depth - 1)
    end
  end

  def run_job(worker, args, replies: [])
    input = StringIO.new(replies.map { |reply| "#{JSON.generate(reply)}\n" }.join)
    output = StringIO.new
    runner = SimbiWorker::Runner.new(SimbiWorker::Protocol.new(input, output))
    runner.run({ "type" => "job", "job_id" => "job-1", "worker" => worker, "args" => args })
    output.string.lines.map { |line| JSON.parse(line) }
  end

  def test_a_retryable_host_error_keeps_the_hosts_class_and_retry_after
    error = { "class" => "SlackRateLimited", "message" => "slow down", "retryable" => true,
              "retry_after_seconds" => 30 }
    call, done = run_job("CallingWorker", [[["slack", "post", { "channel" => "x" }]]],
                         replies: [{ "type" => "reply", "call_id" => 1, "error" => error }])

    assert_equal({ "type" => "call", "call_id" => 1, "job_id" => "job-1", "service" => "slack",
                   "method" => "post", "params" => { "channel" => "x" } }, call)
    assert_equal error, done["error"].slice(*error.keys)
  end

  def test_an_optional_argument_gives_a_range_in_the_arity_message
    done, = run_job("OptionalArgsWorker", [1, 2, 3])

    assert_equal "OptionalArgsWorker expects 1 to 2 argument(s) (first, second), received 3",
                 done["error"]["message"]
    assert_equal false, done["error"]["retryable"]
    assert_equal [1, nil], run_job("OptionalArgsWorker", [1]).first["value"]
  end

  def test_the_backtrace_is_cut_to_twenty_lines
    done, = run_job("TestRunner::DeepFailureWorker", [30])

    assert_equal "RuntimeError", done["error"]["class"]
    assert_equal 20, done["error"]["backtrace"].size
  end

  def test_a_result_that_is_not_json_fails_the_job_instead_of_the_child
    done, = run_job("EchoWorker", [Float::NAN])

    assert_equal "JSON::GeneratorError", done["error"]["class"]
    assert_equal "job-1", done["job_id"]
  end

  def test_bytes_that_are_not_utf8_in_a_message_are_replaced
    done, = run_job("FailingWorker", ["caf\xE9".b])

    assert_equal "flaky caf\uFFFD", done["error"]["message"]
  end
end
