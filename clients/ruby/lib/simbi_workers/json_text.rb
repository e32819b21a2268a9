# frozen_string_literal: true

require "json"

module SimbiWorkers
  # JSON as the Python client writes it (json.dumps with ensure_ascii=False), so that a
  # job's payload, description, size and unique digest are the same bytes from every
  # client; and Python's repr of a str or a float, as its messages show them.
  module JsonText
    DESCRIPTION_ARG_CHARS = 60
    NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/
    SHORT_ESCAPES = { "\\" => "\\\\", "\n" => "\\n", "\r" => "\\r", "\t" => "\\t" }.freeze

    module_function

    def dump(value, sort_keys: false, compact: false)
      case value
      when nil then "null"
      when true, false, Integer then value.to_s
      when Float then py_float(value)
      when String then JSON.generate(value)
      else dump_container(value, sort_keys, compact)
      end
    end

    def dump_container(value, sort_keys, compact)
      return dump_object(value, sort_keys, compact) unless value.is_a?(Array)

      "[#{value.map { |item| dump(item, sort_keys:, compact:) }.join(compact ? ',' : ', ')}]"
    end

    def dump_object(value, sort_keys, compact)
      names = sort_keys ? value.keys.sort : value.keys # UTF-8 byte order is code point order
      entries = names.map do |name|
        "#{JSON.generate(name)}#{compact ? ':' : ': '}#{dump(value[name], sort_keys:, compact:)}"
      end
      "{#{entries.join(compact ? ',' : ', ')}}"
    end

    # Python's repr of a float: shortest digits, exponent form below 1e-4 or from 1e16.
    def py_float(value)
      return "nan" if value.nan?
      return value.positive? ? "inf" : "-inf" if value.infinite?

      digits, point = shortest_digits(value.abs)
      sign = value.negative? ? "-" : ""
      sign + (point > -4 && point <= 16 ? fixed(digits, point) : scientific(digits, point))
    end

    # Float#to_s gives the shortest digits that read back the same, as Python's repr;
    # only where it switches to an exponent differs. Returns the digits and how many of
    # them stand before the decimal point.
    def shortest_digits(value)
      mantissa, exponent = value.to_s.split("e")
      whole, fraction = mantissa.split(".")
      all = whole + fraction.to_s
      point = whole.length + exponent.to_i - all[/\A0*/].length
      digits = all.gsub(/\A0+|0+\z/, "")
      digits.empty? ? ["0", 1] : [digits, point]
    end

    def fixed(digits, point)
      return "0.#{'0' * -point}#{digits}" if point <= 0
      return "#{digits}#{'0' * (point - digits.length)}.0" if point >= digits.length

      "#{digits[0, point]}.#{digits[point..]}"
    end

    def scientific(digits, point)
      head = digits.length > 1 ? "#{digits[0]}.#{digits[1..]}" : digits
      exponent = point - 1
      format("%<head>se%<sign>s%<magnitude>02d",
             head:, sign: exponent.negative? ? "-" : "+", magnitude: exponent.abs)
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
  end
end
