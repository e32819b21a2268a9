# frozen_string_literal: true

require_relative "errors"

module SimbiWorker
  # The tag `skip!` throws to the runner. catch/throw rather than an exception, so a
  # worker's own `rescue => e` cannot swallow a skip by accident.
  SKIP = :simbi_worker_skip

  # Subclass it and define `perform(*args)`; the class name is the worker name that app
  # code enqueues (shared/WORKERS.md). Its return value is the job's JSON result.
  class Base
    # Every subclass, in load order. Only named ones that define `perform` are workers, so
    # an abstract parent (say, a common base for email workers) is not announced in `ready`.
    def self.subclasses_seen
      @subclasses_seen ||= []
    end

    def self.inherited(subclass)
      super
      Base.subclasses_seen << subclass
    end

    def self.workers
      Base.subclasses_seen.select { |k| k.name && k.method_defined?(:perform) }
    end

    def self.worker_names
      workers.map(&:worker_name).sort
    end

    def self.find(name)
      workers.find { |k| k.worker_name == name }
    end

    def self.worker_name
      name
    end

    attr_reader :host, :job_id, :attempt

    # The runner binds each fresh instance to its job; tests bind a fake host the same way.
    def bind(host:, job_id: nil, attempt: 1)
      @host = host
      @job_id = job_id
      @attempt = attempt
      self
    end

    def worker_name
      self.class.worker_name
    end

    # stderr is the child's log; the host re-logs each line with our pid.
    def log(message)
      message.to_s.each_line { |line| $stderr.puts("[#{worker_name} #{job_id}] #{line.chomp}") }
    end

    # Ends the job as done-but-skipped (a deleted user, an opt-out): it counts as processed
    # and is not retried.
    def skip!(reason)
      throw SKIP, reason.to_s
    end
  end
end
