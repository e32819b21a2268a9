# frozen_string_literal: true

require "digest"
require "securerandom"
require "zlib"
require_relative "json_text"

module SimbiWorkers
  # A job on the wire, built exactly as simbi_workers/wire.py builds it: RQ's job hash with
  # a zlib-compressed JSON `data` field [func_path, null, args, {}], a description that
  # redacts secret arguments, and the unique digest over the arguments with sorted keys.
  # enqueue.lua adds status, enqueued_at and simbi_unique.
  module Wire
    FUNC_PREFIX = "simbi_workers.jobs."
    REDACTED = "[redacted]"

    module_function

    def new_id
      SecureRandom.uuid
    end

    # Now as RQ writes times: ISO 8601 with microseconds and a Z.
    def rq_now(time = Time.now)
      time.utc.strftime("%Y-%m-%dT%H:%M:%S.%6NZ")
    end

    def describe(spec, args)
      shown = args.each_with_index.map do |arg, index|
        spec.secret_positions.include?(index) ? REDACTED : arg
      end
      "#{spec.name}(#{shown.map { |arg| JsonText.short(JsonText.dump(arg)) }.join(', ')})"
    end

    def unique_lock(worker, args)
      text = JsonText.dump(args, sort_keys: true, compact: true)
      "simbi:unique:#{worker}:#{Digest::SHA256.hexdigest(text)[0, 32]}"
    end

    # The job hash fields this client writes, as field/value pairs.
    def job_fields(spec, args, now, settings)
      data = JsonText.dump([FUNC_PREFIX + spec.name, nil, args, {}])
      {
        "created_at" => now, "data" => Zlib::Deflate.deflate(data.b),
        "description" => describe(spec, args), "origin" => spec.queue,
        "timeout" => spec.timeout.to_s, "result_ttl" => settings.fetch(:result_ttl).to_s,
        "failure_ttl" => settings.fetch(:failure_ttl).to_s, "simbi_worker" => spec.name,
        "simbi_attempt" => "0"
      }.flatten
    end
  end
end
