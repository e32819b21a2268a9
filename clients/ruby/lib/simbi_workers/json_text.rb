# frozen_string_literal: true

require "json"
require_relative "errors"

module SimbiWorkers
  # JSON as the Python client writes it (json.dumps with ensure_ascii=False), so that a
  # job's payload, description, size and unique digest are the same bytes from every
  # client; and the check that refuses what JSON cannot carry, naming the offending path.
  module JsonText
    DESCRIPTION_ARG_CHARS = 60
    NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/
    SHORT_ESCAPES = { "\\" => "\\\\", "\n" => "\\n", "\r" => "\\r", "\t" => "\\t" }.freeze
    NATIVE = "arguments must be JSON-native (str, int, float, bool, None, list, dict with str keys)"

    module_function

    def dump(value, sort_keys: false, compact: false)
      item, key = compact ? [",", ":"] : [", ", ": "]
      case value
      when nil then "null"
      when true, false, Integer then value.to_s
      when Float then py_float(value)
      when String then JSON.generate(value)
      when Array then "[#{value.map { |v| dump(v, sort_keys: sort_keys, compact: compact) }.join(item)}]"
      else
        names = sort_keys ? value.keys.sort : value.keys # byte order of UTF-8 is code point order
        "{#{names.map { |n| "#{JSON.generate(n)}#{key}#{dump(value[n], sort_keys: sort_keys, compact: compact)}" }.join(item)}}"
      end
    end

    # Python's repr of a float: shortest digits, exponent form below 1e-4 or from 1e16.
    def py_float(value)
      return "nan" if value.nan?
      return value.positive? ? "inf" : "-inf" if value.infinite?

      digits, point = shortest_digits(value.abs)
      sign = value.negative? ? "-" : ""
      return sign + fixed(digits, point) if point > -4 && point <= 16

      head = digits.length > 1 ? "#{digits[0]}.#{digits[1..]}" : digits
      exponent = point - 1
      format("%<sign>s%<head>se%<esign>s%<magnitude>02d",
             sign: sign, head: head, esign: exponent.negative? ? "-" : "+", magnitude: exponent.abs)
    end

    # Float#to_s gives the shortest digits that read back the same, as Python's repr;
    # only where it switches to an exponent differs.
    def shortest_digits(value)
      mantissa, exponent = value.to_s.split("e")
      whole, fraction = mantissa.split(".")
      digits = whole + fraction.to_s
      point = whole.length + exponent.to_i
      stripped = digits.sub(/\A0+/, "")
      point -= digits.length - stripped.length
      stripped = stripped.sub(/0+\z/, "")
      stripped.empty? ? ["0", 1] : [stripped, point]
    end

    def fixed(digits, point)
      return "0.#{'0' * -point}#{digits}" if point <= 0
      return "#{digits}#{'0' * (point - digits.length)}.0" if point >= digits.length

      "#{digits[0, point]}.#{digits[point..]}"
    end

    # Python's repr of a str, as the Python client's messages show keys and names.
    def py_repr(text)
      quote = text.include?("'") && !text.include?('"') ? '"' : "'"
      quote + text.each_char.map { |char| repr_char(char, quote) }.join + quote
    end

    def repr_char(char, quote)
      return "\\#{char}" if char == quote
      return SHORT_ESCAPES[char] if SHORT_ESCAPES.key?(char)
      return char if char == " " || !NOT_PRINTABLE.match?(char)

      code = char.ord
      return format("\\x%02x", code) if code < 0x100
      return format("\\u%04x", code) if code < 0x10000

      format("\\U%08x", code)
    end

    # Cut to 60 characters with an ellipsis, as the Python client's descriptions.
    def short(text)
      text.length <= DESCRIPTION_ARG_CHARS ? text : "#{text[0, DESCRIPTION_ARG_CHARS - 1]}…"
    end

    # Refuse anything JSON would change or reject; returns the value with every string in
    # UTF-8 (a binary string that is valid UTF-8, as drivers often return, is accepted).
    def check(value, path)
      case value
      when nil, true, false, Integer then value
      when Float
        raise JobInputError, "#{path} is #{py_float(value)}: JSON has no NaN or infinity" unless value.finite?

        value
      when String then utf8(value, path)
      when Array then value.each_with_index.map { |item, index| check(item, "#{path}[#{index}]") }
      when Hash then check_hash(value, path)
      else raise JobInputError, "#{path} is a #{value.class.name} (#{short(value.inspect)}): #{NATIVE}"
      end
    end

    def check_hash(value, path)
      value.to_h do |key, item|
        raise JobInputError, "#{path} has the key #{key.inspect}: JSON object keys are strings" unless key.is_a?(String)

        text = utf8(key, path)
        [text, check(item, "#{path}[#{py_repr(text)}]")]
      end
    end

    def utf8(text, path)
      utf8 = case text.encoding
             when Encoding::UTF_8 then text
             when Encoding::BINARY, Encoding::US_ASCII then text.dup.force_encoding(Encoding::UTF_8)
             else text.encode(Encoding::UTF_8)
             end
      return utf8 if utf8.valid_encoding?

      raise JobInputError, "#{path} is not valid UTF-8 text (#{short(text.inspect)}): #{NATIVE}"
    rescue EncodingError
      raise JobInputError, "#{path} cannot be converted to UTF-8 (#{short(text.inspect)}): #{NATIVE}"
    end
  end
end
