# frozen_string_literal: true

require "json"
require "open3"
require "rbconfig"
require "timeout"

# The real Ruby child (`ruby workers/ruby/main.rb`) on pipes, driven as the host would.
class Child
  MAIN = File.expand_path("../../main.rb", __dir__)
  FIXTURE_WORKERS = File.expand_path("../fixtures/workers", __dir__)
  TIMEOUT_SECONDS = 10

  attr_reader :pid

  def initialize(extra_workers: FIXTURE_WORKERS)
    env = extra_workers ? { "SIMBI_RUBY_EXTRA_WORKERS" => extra_workers } : {}
    @stdin, @stdout, @stderr, @wait = Open3.popen3(env, RbConfig.ruby, MAIN)
    @pid = @wait.pid
    # Drained all along: a child blocked on a full stderr pipe would look like a hang.
    @stderr_text = Thread.new { @stderr.read }
  end

  def send_message(message)
    send_line(JSON.generate(message))
  end

  def send_line(line)
    @stdin.write(line, "\n")
    @stdin.flush
  end

  # The next stdout line, which must be there within the timeout.
  def read_line
    line = Timeout.timeout(TIMEOUT_SECONDS) { @stdout.gets }
    raise "child closed stdout; stderr:\n#{finish.last}" if line.nil?

    line
  end

  def read_message
    JSON.parse(read_line)
  end

  def run_job(worker, args, job_id: "job-1")
    send_message({ type: "job", job_id:, worker:, args:, attempt: 1,
                   queue: "default", timeout_seconds: 60, deadline_ms: 0 })
    read_message
  end

  # Closes stdin (the host's shutdown) and returns [exit status, stdout rest, stderr].
  def finish
    @stdin.close unless @stdin.closed?
    Timeout.timeout(TIMEOUT_SECONDS) { [@wait.value, @stdout.read, @stderr_text.value] }
  rescue Timeout::Error
    Process.kill("KILL", @pid)
    raise
  end
end
