# frozen_string_literal: true

module SimbiWorker
  # The root of every error the runtime defines, so a worker can rescue ours in one place.
  class Error < StandardError; end

  # A failure that retrying cannot fix: the job goes straight to the dead set
  # (docs/protocol.md, `done`: retryable false).
  class PermanentError < Error; end

  # A failure that a later attempt can get past (another run holds a claim right now, say).
  # Any exception but a PermanentError retries; this class only names the case.
  class RetryableError < Error; end

  # The largest id a BIGINT column holds: a larger Integer is a job argument that no query
  # can ever match (and the db driver overflows on it), so it is refused for good.
  MAX_ID = (2**63) - 1

  # The job names a worker this child does not serve.
  class UnknownWorkerError < PermanentError; end

  # The job's argument count does not fit the worker's `perform`.
  class ArgumentCountError < PermanentError; end

  # An error reply to a host call. `klass`, `retryable` and `retry_after_seconds` come from
  # the host and are passed on unchanged in `done` when the worker does not rescue it.
  class HostError < Error
    attr_reader :klass, :retryable, :retry_after_seconds

    def self.from_reply(error)
      new(klass: error["class"], message: error["message"],
          retryable: error.fetch("retryable", true),
          retry_after_seconds: error["retry_after_seconds"])
    end

    def initialize(klass:, message:, retryable: true, retry_after_seconds: nil)
      super(message)
      @klass = klass
      @retryable = retryable ? true : false
      @retry_after_seconds = retry_after_seconds
    end

    def retryable?
      @retryable
    end
  end
end
