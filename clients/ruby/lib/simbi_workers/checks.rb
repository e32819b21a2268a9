# frozen_string_literal: true

require_relative "errors"
require_relative "json_check"
require_relative "json_text"
require_relative "suggest"

module SimbiWorkers
  # What the Python client refuses before anything reaches Redis, with its messages word
  # for word (simbi_workers/client.py; clients/vectors.json holds the three clients to it).
  module Checks
    MAX_DELAY_SECONDS = 10 * 365 * 86_400
    SHOWN_ROW_CHARS = 60 # of a refused perform_bulk row, as Python's repr(row)[:60]
    # Python's type names for the values a message may show as Python would.
    PY_TYPE_NAMES = { String => "str", Integer => "int", Float => "float", TrueClass => "bool",
                      FalseClass => "bool", NilClass => "NoneType" }.freeze

    module_function

    def find_worker(catalog, worker)
      spec = catalog.workers[worker]
      return spec if spec

      close = Suggest.nearest(worker.to_s, catalog.workers.keys)
      hint = close ? " (did you mean #{close}?)" : ""
      raise JobInputError, "unknown worker #{JsonText.py_repr(worker.to_s)}#{hint}: " \
                           "#{catalog.queues_file} declares no such worker"
    end

    # The arguments with every string in UTF-8, or JobInputError saying what is wrong.
    def check_arguments(spec, args, max_payload_bytes)
      check_count(spec, args)
      checked = check_json(args)
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

    def check_json(args)
      args.each_with_index.map { |arg, index| JsonCheck.check(arg, "args[#{index}]") }
    end

    def check_unique_seconds(value)
      return if value.nil? || (value.is_a?(Integer) && value >= 1)

      raise JobInputError, "unique_seconds must be a positive whole number, got #{repr(value)}"
    end

    # Seconds from an Integer, a Float or an ActiveSupport::Duration (`5.minutes`), as the
    # Python client takes a number or a timedelta; a String, nil or a Time is refused.
    def delay_seconds(delay)
      seconds = as_float(delay, "perform_in: the delay") if delay.is_a?(Integer)
      seconds = delay.to_f if delay.is_a?(Float) || duration?(delay)
      unless seconds
        raise JobInputError,
              "perform_in: the delay must be a number of seconds or a timedelta, got #{repr(delay)}"
      end
      return seconds if seconds >= 0 && seconds <= MAX_DELAY_SECONDS

      raise JobInputError, "perform_in: the delay must be from 0 to " \
                           "#{thousands(MAX_DELAY_SECONDS)} s (ten years), " \
                           "got #{JsonText.py_float(seconds)} s"
    end

    def duration?(value)
      defined?(ActiveSupport::Duration) ? value.is_a?(ActiveSupport::Duration) : false
    end

    # perform_at's time as Unix seconds, at most ten years from now.
    def run_at(value)
      seconds = epoch_seconds(value)
      return seconds if seconds - Time.now.to_f <= MAX_DELAY_SECONDS

      raise JobInputError, "perform_at: #{repr(value)} is more than ten years ahead; the " \
                           "latest time is #{thousands(MAX_DELAY_SECONDS)} s from now"
    end

    # Unix seconds from a Time (or DateTime, ActiveSupport::TimeWithZone) or a number.
    def epoch_seconds(value)
      seconds = case value
                when Time then value.to_f
                when Numeric then as_float(value, "perform_at: the time")
                when String then nil
                else value.to_time.to_f if value.respond_to?(:to_time)
                end
      return seconds if seconds&.finite?

      raise JobInputError, "perform_at: expected a datetime or Unix time, got #{repr(value)}"
    end

    # An Integer past 1.8e308 becomes Infinity as a Float: refused with the Python client's
    # words rather than as an infinite delay or time.
    def as_float(number, what)
      seconds = number.to_f
      return seconds unless number.is_a?(Integer) && seconds.infinite?

      raise JobInputError, "#{what} is an integer too large for a float (over 1.8e308)"
    end

    # One row of perform_bulk as a list of arguments: an Array, nothing else (a String or a
    # Hash would be taken apart into what was never meant as arguments).
    def argument_list(worker, index, row)
      return row if row.is_a?(Array)

      shown = repr(row)[0, SHOWN_ROW_CHARS]
      raise JobInputError, "perform_bulk(#{worker}): item #{index} must be a list of arguments, " \
                           "got #{PY_TYPE_NAMES.fetch(row.class, row.class.name)} #{shown}; " \
                           "for one argument each, write [[1], [2], …]"
    end

    def thousands(value)
      value.to_s.reverse.scan(/\d{1,3}/).join(",").reverse
    end

    # Python's repr of a JSON scalar ('abc', 1, 2.5, True, None), so that a message about one
    # reads as the Python client's; any other value as Ruby inspects it.
    def repr(value)
      case value
      when Float then JsonText.py_float(value)
      when String then JsonText.py_repr(value)
      when true then "True"
      when false then "False"
      when nil then "None"
      else value.inspect
      end
    end
  end
end
