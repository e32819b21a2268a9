# frozen_string_literal: true

require "redis"
require "socket"
require "tmpdir"

# A real redis-server on a free loopback port, started once for the test run.
module TestRedis
  module_function

  def url
    @url ||= start
  end

  def connection
    @connection ||= Redis.new(url:)
  end

  def start
    port = TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
    pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", Dir.tmpdir, out: File::NULL)
    at_exit { Process.kill("TERM", pid) && Process.wait(pid) }
    wait_until_up(Redis.new(url: "redis://127.0.0.1:#{port}/0"))
    "redis://127.0.0.1:#{port}/0"
  end

  def wait_until_up(redis)
    200.times do
      return redis.ping
    rescue Redis::CannotConnectError
      sleep 0.02
    end
    raise "redis-server did not answer"
  end
end
