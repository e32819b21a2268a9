# frozen_string_literal: true

require_relative "errors"
require_relative "json_text"

module SimbiWorkers
  # Refuse what JSON cannot carry, naming the path of the offending value, with the Python
  # client's words where Python refuses the same thing (NaN, a non-string key).
  module JsonCheck
    NATIVE = "arguments must be JSON-native (str, int, float, bool, None, list, dict with str keys)"
    # Arrays/Hashes inside one argument. Ruby's JSON parser stops at 100 levels and Python's
    # recursion near 1,000; the Ruby child's line wraps an argument in two more
    # ({"type": "job", ..., "args": [ARG]}), so 32 leaves room and is the same for every client.
    MAX_DEPTH = 32
    # Python's default int_max_str_digits: the host's json.loads refuses a longer integer.
    MAX_INT_DIGITS = 4300
    INT_LIMIT = 10**MAX_INT_DIGITS

    module_function

    # The value with every string in UTF-8 (a binary string that is valid UTF-8, as
    # drivers often return, is accepted), or JobInputError. `path` names one argument;
    # Arrays/Hashes nested in it past MAX_DEPTH are refused.
    def check(value, path, argument = path, levels = MAX_DEPTH)
      case value
      when nil, true, false then value
      when Integer then check_integer(value, path)
      when Float then check_float(value, path)
      when String then utf8(value, path)
      when Array, Hash then check_container(value, path, argument, levels)
      else raise JobInputError, "#{path} is a #{value.class.name} (#{shown(value)}): #{NATIVE}"
      end
    end

    def check_container(value, path, argument, levels)
      if levels.zero?
        raise JobInputError, "#{argument} is nested more than #{MAX_DEPTH} levels deep"
      end
      return check_hash(value, path, argument, levels - 1) if value.is_a?(Hash)

      value.each_with_index.map do |item, index|
        check(item, "#{path}[#{index}]", argument, levels - 1)
      end
    end

    def check_integer(value, path)
      return value if value.abs < INT_LIMIT

      raise JobInputError, "#{path} is an integer of more than #{MAX_INT_DIGITS} digits: " \
                           "Python's JSON reader refuses it"
    end

    def check_float(value, path)
      return value if value.finite?

      raise JobInputError, "#{path} is #{JsonText.py_float(value)}: JSON has no NaN or infinity"
    end

    def check_hash(value, path, argument, levels)
      value.to_h do |key, item|
        unless key.is_a?(String)
          raise JobInputError, "#{path} has the key #{key.inspect}: JSON object keys are strings"
        end

        text = utf8(key, path)
        [text, check(item, "#{path}[#{JsonText.py_repr(text)}]", argument, levels)]
      end
    end

    def utf8(text, path)
      utf8 = case text.encoding
             when Encoding::UTF_8 then text
             when Encoding::BINARY, Encoding::US_ASCII then text.dup.force_encoding(Encoding::UTF_8)
             else text.encode(Encoding::UTF_8)
             end
      return utf8 if utf8.valid_encoding?

      raise JobInputError, "#{path} is not valid UTF-8 text (#{shown(text)}): #{NATIVE}"
    rescue EncodingError
      raise JobInputError, "#{path} cannot be converted to UTF-8 (#{shown(text)}): #{NATIVE}"
    end

    def shown(value)
      JsonText.short(value.inspect)
    end
  end
end
