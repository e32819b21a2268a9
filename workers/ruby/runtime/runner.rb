# frozen_string_literal: true

require_relative "arity"
require_relative "base"
require_relative "errors"
require_relative "host"
require_relative "protocol"

module SimbiWorker
  # Runs one `job` message and writes its `done` (docs/protocol.md).
  class Runner
    BACKTRACE_LINES = 20

    def initialize(protocol, host = Host.new(protocol))
      @protocol = protocol
      @host = host
    end

    def run(job)
      done = execute(job)
      @protocol.write(done)
    rescue JSON::GeneratorError => e
      # The result (or an error message) is not JSON, e.g. NaN: report that instead.
      @protocol.write(failure(job["job_id"], e))
    end

    private

    def execute(job)
      job_id = job["job_id"]
      worker = build_worker(job)

      @host.job_id = job_id
      perform(worker, job_id, job["args"])
    rescue StandardError, ScriptError => e
      failure(job_id, e)
    ensure
      @host.job_id = nil
    end

    def perform(worker, job_id, args)
      value = nil
      reason = catch(SKIP) do
        value = worker.perform(*args)
        nil
      end
      return { type: "done", job_id:, value: nil, skipped: reason } if reason

      { type: "done", job_id:, value: }
    end

    def build_worker(job)
      klass = Base.find(job["worker"])
      unless klass
        raise UnknownWorkerError, "unknown worker #{job['worker'].inspect}; this Ruby child " \
                                  "serves: #{Base.worker_names.join(', ')}"
      end
      check_arguments!(klass, job["args"])
      klass.new.bind(host: @host, job_id: job["job_id"], attempt: job.fetch("attempt", 1))
    end

    def check_arguments!(klass, args)
      unless args.is_a?(Array)
        raise PermanentError, "job args must be a JSON array, got #{args.inspect[0, 200]}"
      end

      arity = Arity.new(klass.instance_method(:perform))
      return if arity.accepts?(args.size)

      raise ArgumentCountError, "#{klass.worker_name} expects #{arity} argument(s) " \
                                "(#{arity.names.join(', ')}), received #{args.size}"
    end

    def failure(job_id, error)
      host_error = error.is_a?(HostError)
      { type: "done", job_id:, error: {
        class: (host_error && error.klass) || error.class.name || error.class.to_s,
        message: utf8(error.message),
        backtrace: Array(error.backtrace).first(BACKTRACE_LINES).map { |line| utf8(line) },
        retryable: retryable?(error),
        retry_after_seconds: host_error ? error.retry_after_seconds : nil
      } }
    end

    # Exceptions retry by default; ours and the host's say when retrying cannot help.
    def retryable?(error)
      return error.retryable? if error.is_a?(HostError)

      !error.is_a?(PermanentError)
    end

    # A message may carry bytes that are not UTF-8 (binary data, a C library's text); JSON
    # cannot, so bad bytes become U+FFFD rather than losing the whole error.
    def utf8(text)
      text.to_s.dup.force_encoding(Encoding::UTF_8).scrub
    end
  end
end
