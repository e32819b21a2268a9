# frozen_string_literal: true

require_relative "errors"
require_relative "json_text"

module SimbiWorkers
  # Refuse what JSON cannot carry, naming the path of the offending value, with the Python
  # client's words where Python refuses the same thing (NaN, a non-string key).
  module JsonCheck
    NATIVE = "arguments must be JSON-native (str, int, float, bool, None, list, dict with str keys)"

    module_function

    # The value with every string in UTF-8 (a binary string that is valid UTF-8, as
    # drivers often return, is accepted), or JobInputError.
    def check(value, path)
      case value
      when nil, true, false, Integer then value
      when Float then check_float(value, path)
      when String then utf8(value, path)
      when Array then value.each_with_index.map { |item, index| check(item, "#{path}[#{index}]") }
      when Hash then check_hash(value, path)
      else raise JobInputError, "#{path} is a #{value.class.name} (#{shown(value)}): #{NATIVE}"
      end
    end

    def check_float(value, path)
      return value if value.finite?

      raise JobInputError, "#{path} is #{JsonText.py_float(value)}: JSON has no NaN or infinity"
    end

    def check_hash(value, path)
      value.to_h do |key, item|
        unless key.is_a?(String)
          raise JobInputError, "#{path} has the key #{key.inspect}: JSON object keys are strings"
        end

        text = utf8(key, path)
        [text, check(item, "#{path}[#{JsonText.py_repr(text)}]")]
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
