# frozen_string_literal: true

require_relative "errors"
require_relative "protocol"

module SimbiWorker
  # The client side of host calls: databases, Redis, Slack... are reached only through
  # the host, which holds the credentials (docs/protocol.md, `call` and `reply`).
  class Host
    # Set by the runner for the duration of each job; every call carries it.
    attr_accessor :job_id

    def initialize(protocol)
      @protocol = protocol
      @last_call_id = 0
    end

    # Returns the reply's value, or raises HostError with the fields of its error.
    def call(service, method_name, params = {})
      call_id = (@last_call_id += 1)
      @protocol.write({ type: "call", call_id:, job_id:,
                        service:, method: method_name, params: })
      reply = await_reply(call_id)
      raise HostError.from_reply(reply["error"]) if reply["error"]

      reply["value"]
    end

    private

    # Calls are one at a time, so the next reply should be ours; anything else means the
    # two sides disagree about the conversation.
    def await_reply(call_id)
      loop do
        message = @protocol.read
        # NOTE: the host closes our stdin only to stop us; exit 0 as at any end of input.
        # The job never finishes, and the host fails it by its own rules.
        exit 0 if message.nil?
        return message if message["type"] == "reply" && message["call_id"] == call_id

        got = message.to_json[0, Protocol::EXCERPT_CHARS]
        Protocol.violation!("waiting for the reply to call #{call_id}, got #{got}")
      end
    end
  end
end
