# frozen_string_literal: true

require "digest"
require "redis"
require_relative "catalog"
require_relative "errors"

module SimbiWorkers
  # Reaching Redis as the Python side does: REDIS_URL when set, else the local Redis that
  # `simbi-workers start` runs on a unix socket under var/ (SIMBI_VAR_DIR); and running
  # the one enqueue script every client shares.
  module Connection
    ENQUEUE_LUA = File.join(Catalog::REPO_ROOT, "simbi_workers", "lua", "enqueue.lua")

    module_function

    def connect(url, env)
      target = url || env["REDIS_URL"]
      return Redis.new(url: target) if target && !target.empty?

      Redis.new(path: local_socket(env))
    end

    def local_socket(env)
      var_dir = env["SIMBI_VAR_DIR"].to_s
      var_dir = var_dir.empty? ? File.join(Catalog::REPO_ROOT, "var") : File.expand_path(var_dir)
      socket = File.join(var_dir, "redis", "redis.sock")
      return socket if File.exist?(socket)

      raise ClientSetupError, "REDIS_URL is not set and no local Redis is running at #{socket}: " \
                              "run `simbi-workers start` (it starts one), or set REDIS_URL"
    end

    def script
      @script ||= begin
        source = File.read(ENQUEUE_LUA, encoding: "UTF-8")
        [source, Digest::SHA1.hexdigest(source)]
      rescue SystemCallError => e
        raise ClientSetupError, "#{ENQUEUE_LUA}: cannot read the enqueue script (#{e.message})"
      end
    end

    # EVALSHA, and EVAL once when this Redis has not seen the script yet.
    def run_enqueue(redis, argv)
      source, sha = script
      redis.evalsha(sha, argv:)
    rescue Redis::CommandError => e
      raise unless e.message.start_with?("NOSCRIPT")

      redis.eval(source, argv:)
    end
  end
end
