# frozen_string_literal: true

require_relative "catalog"
require_relative "checks"
require_relative "connection"
require_relative "settings"
require_relative "wire"

module SimbiWorkers
  # Enqueue jobs by worker name, as the Python client does and through the same Lua
  # script: perform_async, perform_in, perform_at, perform_bulk, and
  # set(unique_seconds: 60) for one call. Every call is checked before anything reaches
  # Redis. Thread-safe as redis-rb's connection is (it serialises commands).
  class Client
    BULK_CHUNK = 1000 # jobs per enqueue.lua call, as in the Python client

    attr_reader :catalog, :settings

    # redis: a Redis connection to use (close leaves it open); redis_url: default
    # REDIS_URL, else the local Redis of `simbi-workers start`; catalog_file: default
    # SIMBI_CLIENT_CATALOG, else clients/catalog.json.
    def initialize(redis: nil, redis_url: nil, catalog_file: nil, env: ENV)
      @env = env
      @catalog = Catalog.load(catalog_file || env["SIMBI_CLIENT_CATALOG"])
      @settings = Settings.read(@catalog.settings, env)
      @redis = redis
      @redis_url = redis_url
      @owns_redis = redis.nil?
    end

    # Options for the next calls, Sidekiq's `Worker.set(...)`.
    def set(unique_seconds: nil)
      Checks.check_unique_seconds(unique_seconds)
      Scoped.new(self, unique_seconds)
    end

    def perform_async(worker, *args) = set.perform_async(worker, *args)
    def perform_in(delay, worker, *args) = set.perform_in(delay, worker, *args)
    def perform_at(time, worker, *args) = set.perform_at(time, worker, *args)
    def perform_bulk(worker, args_list) = set.perform_bulk(worker, args_list)

    def close
      @redis&.close if @owns_redis
      @redis = nil if @owns_redis
    end

    # Check every job, then write them in chunks of BULK_CHUNK; the ids in order.
    def enqueue(worker, batches, run_at, unique_seconds)
      spec = Checks.find_worker(@catalog, worker)
      window = unique_seconds || spec.unique
      checked = batches.map do |args|
        Checks.check_arguments(spec, args, @settings[:max_payload_bytes])
      end

      checked.each_slice(BULK_CHUNK).flat_map { |chunk| write_chunk(spec, chunk, run_at, window) }
    end

    private

    # One enqueue.lua call: the head of its ARGV, then per job its id, lock and fields.
    def write_chunk(spec, chunk, run_at, window)
      now = Wire.rq_now
      rows = chunk.map { |args| row(spec, args, now, window) }
      pairs = (rows.first.length - 2) / 2
      head = [spec.queue, run_at.nil? ? "" : run_at.to_s, window.to_s, now, pairs.to_s]
      Connection.run_enqueue(redis, head + rows.flatten)
    end

    def row(spec, args, now, window)
      lock = window ? Wire.unique_lock(spec.name, args) : ""
      [Wire.new_id, lock, *Wire.job_fields(spec, args, now, @settings)]
    end

    # Connected on first use, so a bad call is refused even when Redis is down.
    def redis
      @redis ||= Connection.connect(@redis_url, @env)
    end
  end

  # A client with per-call options; see Client#set.
  class Scoped
    def initialize(client, unique_seconds)
      @client = client
      @unique_seconds = unique_seconds
    end

    def perform_async(worker, *args)
      @client.enqueue(worker, [args], nil, @unique_seconds).first
    end

    def perform_in(delay, worker, *args)
      run_at = Time.now.to_f + Checks.delay_seconds(delay)
      @client.enqueue(worker, [args], run_at, @unique_seconds).first
    end

    def perform_at(time, worker, *args)
      @client.enqueue(worker, [args], Checks.run_at(time), @unique_seconds).first
    end

    def perform_bulk(worker, args_list)
      batches = args_list.each_with_index.map do |row, index|
        Checks.argument_list(worker, index, row)
      end
      @client.enqueue(worker, batches, nil, @unique_seconds)
    end
  end
end
