# frozen_string_literal: true

# The Ruby child: `ruby workers/ruby/main.rb`. It loads every worker, says `ready`, then
# runs `job` messages one at a time until the host closes stdin (docs/protocol.md).
require_relative "runtime/runner"

# Before any worker code runs, so that even a `puts` at load time lands in the log.
protocol = SimbiWorker::Protocol.take_over_stdio
# Worker files and views are UTF-8 whatever LANG the host's clean environment carries.
Encoding.default_external = Encoding::UTF_8

# The shipped workers, then those of SIMBI_RUBY_EXTRA_WORKERS (directories separated by
# ':'), which tests use so that their workers never appear in a production `ready`.
def worker_files
  extra = ENV.fetch("SIMBI_RUBY_EXTRA_WORKERS", "").split(File::PATH_SEPARATOR).reject(&:empty?)
  [File.join(__dir__, "workers"), *extra].flat_map do |dir|
    dir = File.expand_path(dir)
    abort("simbi ruby child: no worker directory #{dir}") unless File.directory?(dir)
    Dir[File.join(dir, "*.rb")] # sorted: Dir[] sorts since Ruby 3.0
  end
end

# A broken worker file stops the child before `ready`: the host reports this stderr text
# and refuses to start, which beats serving a partial list of workers.
def load_worker(file)
  require file
rescue ScriptError, StandardError => e
  trace = Array(e.backtrace).first(5).map { |line| "\n  from #{line}" }.join
  $stderr.puts("simbi ruby child: cannot load worker file #{file}: " \
               "#{e.class}: #{e.message}#{trace}")
  exit 1
end

worker_files.each { |file| load_worker(file) }

protocol.write({ type: "ready", protocol: SimbiWorker::Protocol::VERSION, runtime: "ruby",
                 version: RUBY_VERSION, pid: Process.pid,
                 workers: SimbiWorker::Base.worker_names })

runner = SimbiWorker::Runner.new(protocol)
while (message = protocol.read)
  # Only `job` may arrive between jobs; a stray `reply` means the host lost track of us.
  unless message["type"] == "job"
    SimbiWorker::Protocol.violation!("expected a job, got #{message['type'].inspect}")
  end

  runner.run(message)
end
exit 0
