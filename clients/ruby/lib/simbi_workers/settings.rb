# frozen_string_literal: true

require_relative "errors"

module SimbiWorkers
  # The settings a client reads from the environment, with the defaults of catalog.json.
  module Settings
    NAMES = { max_payload_bytes: "SIMBI_MAX_PAYLOAD_BYTES", result_ttl: "SIMBI_RESULT_TTL",
              failure_ttl: "SIMBI_FAILURE_TTL" }.freeze

    module_function

    def read(defaults, env)
      NAMES.transform_values { |name| number(name, defaults, env) }
    end

    def number(name, defaults, env)
      text = env[name].to_s.strip
      return defaults.fetch(name) { raise ClientSetupError, "no default: #{name}" } if text.empty?
      return Integer(text, 10) if text.match?(/\A\d+\z/)

      raise ClientSetupError, "#{name} must be a whole number, got #{text.inspect}"
    end
  end
end
