# frozen_string_literal: true

require_relative "errors"
require_relative "json_check"
require_relative "json_text"

module SimbiWorkers
  # What the Python client refuses before anything reaches Redis, with its messages word
  # for word (simbi_workers/client.py; clients/vectors.json holds the three clients to it).
  module Checks
    MAX_DELAY_SECONDS = 10 * 365 * 86_400

    module_function

    def find_worker(catalog, worker)
      spec = catalog.workers[worker]
      return spec if spec

      close = suggest(worker.to_s, catalog.workers.keys)
      hint = close ? " (did you mean #{close}?)" : ""
      raise JobInputError, "unknown worker #{JsonText.py_repr(worker.to_s)}#{hint}: " \
                           "#{catalog.queues_file} declares no such worker"
    end

    # The arguments with every string in UTF-8, or JobInputError saying what is wrong.
    def check_arguments(spec, args, max_payload_bytes)
      check_count(spec, args)
      checked = check_json(spec, args)
      check_size(spec, checked, max_payload_bytes)
      checked
    end

    def check_count(spec, args)
      return if args.length == spec.args.length

      names = spec.args.empty? ? "none" : spec.args.join(", ")
      raise JobInputError,
            "#{spec.name} takes #{spec.args.length} argument(s) (#{names}), got #{args.length}"
    end

    def check_size(spec, args, max_payload_bytes)
      size = JsonText.dump(args).bytesize
      return if size <= max_payload_bytes

      raise JobInputError,
            "#{spec.name}: the arguments are #{thousands(size)} bytes as JSON, over the limit of " \
            "#{thousands(max_payload_bytes)} (SIMBI_MAX_PAYLOAD_BYTES); " \
            "store large data elsewhere and pass its key"
    end

    def check_json(spec, args)
      args.each_with_index.map { |arg, index| JsonCheck.check(arg, "args[#{index}]") }
    rescue SystemStackError
      raise JobInputError, "#{spec.name}: the arguments are nested too deeply"
    end

    def check_unique_seconds(value)
      return if value.nil? || (value.is_a?(Integer) && value >= 1)

      raise JobInputError, "unique_seconds must be a positive whole number, got #{repr(value)}"
    end

    # Seconds from a number, or from anything else with to_f (ActiveSupport::Duration).
    def delay_seconds(delay)
      seconds = delay.respond_to?(:to_f) && !delay.is_a?(String) ? delay.to_f : nil
      return seconds if seconds && seconds >= 0 && seconds <= MAX_DELAY_SECONDS

      got = seconds ? JsonText.py_float(seconds) : repr(delay)
      raise JobInputError, "perform_in: the delay must be from 0 to " \
                           "#{thousands(MAX_DELAY_SECONDS)} s (ten years), got #{got} s"
    end

    # Unix seconds from a Time (or DateTime, ActiveSupport::TimeWithZone) or a number.
    def epoch_seconds(value)
      seconds = case value
                when Time, Numeric then value.to_f
                when String then nil
                else value.to_time.to_f if value.respond_to?(:to_time)
                end
      return seconds if seconds&.finite?

      raise JobInputError, "perform_at: expected a datetime or Unix time, got #{repr(value)}"
    end

    # The known name nearest to `name` (edit distance, ignoring case; the first of a tie),
    # if it is within a third of its length: the Python client's `suggest`.
    def suggest(name, known)
      best = nil
      best_distance = (name.length / 3) + 1
      known.each do |candidate|
        distance = edit_distance(name.downcase, candidate.downcase)
        if distance < best_distance
          best = candidate
          best_distance = distance
        end
      end
      best
    end

    def edit_distance(left, right)
      previous = (0..right.length).to_a
      left.each_char.with_index(1) { |char, i| previous = next_row(previous, char, i, right) }
      previous.last
    end

    # Row i of the edit-distance table, from row i - 1 and the i-th character of the left.
    def next_row(previous, char, index, right)
      current = [index]
      right.each_char.with_index(1) do |other, j|
        cost = char == other ? 0 : 1
        current << [previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost].min
      end
      current
    end

    def thousands(value)
      value.to_s.reverse.scan(/\d{1,3}/).join(",").reverse
    end

    def repr(value)
      case value
      when Float then JsonText.py_float(value)
      when String then JsonText.py_repr(value)
      else value.inspect
      end
    end
  end
end
