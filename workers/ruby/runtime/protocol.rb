# frozen_string_literal: true

require "json"

module SimbiWorker
  # JSON lines on the child's stdin/stdout (docs/protocol.md, version 1).
  class Protocol
    VERSION = 1
    EXCERPT_CHARS = 200

    # Moves the process's own stdio out of the way and returns a Protocol on private
    # copies of fd 0 and fd 1. Any line on stdout that is not protocol makes the host kill
    # us, so fd 1 itself is pointed at stderr: `puts`, `STDOUT.write` and subprocesses
    # all end up in the log. stdin is emptied so worker code cannot eat protocol lines.
    # The copies are close-on-exec (Ruby's default), so subprocesses never inherit them.
    def self.take_over_stdio
      input = $stdin.dup
      output = $stdout.dup
      $stdin.reopen(File::NULL)
      $stdout.reopen($stderr)
      $stdout.sync = true
      new(input, output)
    end

    # Reports a broken conversation and exits 2: the host kills and replaces a child
    # whose stream it cannot trust anyway, so there is nothing to recover.
    def self.violation!(reason)
      $stderr.puts("simbi ruby child: protocol violation: #{reason}")
      exit 2
    end

    def initialize(input, output)
      @input = input
      @output = output
      # The host gives us a clean environment whose LANG may be C; the wire is UTF-8.
      @input.set_encoding(Encoding::UTF_8)
      @output.set_encoding(Encoding::UTF_8)
      @output.sync = true
    end

    # The next message as a Hash, or nil at end of input (the host's shutdown signal).
    def read
      line = @input.gets
      return nil if line.nil?

      message = parse(line)
      return message if message.is_a?(Hash) && message["type"].is_a?(String)

      self.class.violation!("not a protocol message: #{excerpt(line)}")
    end

    # Raises JSON::GeneratorError (before writing anything) when `message` is not JSON.
    def write(message)
      @output.write(JSON.generate(message), "\n")
    end

    private

    def parse(line)
      JSON.parse(line)
    rescue JSON::ParserError
      # The parser's own message repeats the rest of the input, which may be megabytes.
      self.class.violation!("a line that is not JSON: #{excerpt(line)}")
    end

    def excerpt(line)
      line.chomp.length > EXCERPT_CHARS ? "#{line[0, EXCERPT_CHARS]}…" : line.chomp
    end
  end
end
