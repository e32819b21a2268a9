# frozen_string_literal: true

# clients/vectors.json through the Ruby client: the same Redis state and the same refusals
# as the Python client (tests/test_client_vectors.py wrote the expectations).
require "json"
require "minitest/autorun"
require "zlib"
require "simbi_workers/client"
require "redis_server"

class TestVectors < Minitest::Test
  VECTORS = File.expand_path("../../vectors.json", __dir__)
  # A Ruby string cannot hold a lone surrogate (the parser refuses a high one and makes an
  # invalid string of a low one), so in the cases that have one, which are not run here, it
  # reads as U+FFFD. An escaped backslash is matched first, so the JSON text \\udc00 (a
  # backslash, then "udc00", as in a message) is kept.
  JSON_ESCAPE = /\\(?:\\|ud[89ab]\h\h\\ud[c-f]\h\h|ud[89a-f]\h\h)/i
  CASES = JSON.parse(File.read(VECTORS, encoding: "UTF-8").gsub(JSON_ESCAPE) do |escape|
    escape.length == 6 ? "\\ufffd" : escape
  end)["cases"]
  RQ_TIME = /\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\z/

  CASES.select { |c| c.fetch("runtimes", ["ruby"]).include?("ruby") }.each do |vector|
    define_method("test_vector: #{vector['name']}") do
      TestRedis.connection.flushdb
      assert_equal vector["expect"], run_case(vector)
    end
  end

  private

  def run_case(vector)
    env = ENV.to_h.merge(vector.fetch("settings", {}).transform_values(&:to_s))
    client = SimbiWorkers::Client.new(redis: TestRedis.connection,
                                      catalog_file: SimbiWorkers::Catalog::DEFAULT_FILE,
                                      env:)
    returns = []
    begin
      vector["calls"].each { |call| returns << perform(client, call) }
    rescue SimbiWorkers::JobInputError => e
      return { "refused" => e.message.gsub(client.catalog.queues_file, "{queues_file}") }
    end
    ids = returns.flatten.uniq
    { "returns" => normalize(returns, ids), "redis" => normalize(dump(TestRedis.connection), ids) }
  end

  def perform(client, call)
    options = client.set(unique_seconds: call["unique_seconds"])
    case call["call"]
    when "perform_bulk" then options.perform_bulk(call["worker"], call["args_list"])
    when "perform_in" then options.perform_in(call["in"], call["worker"], *call["args"])
    when "perform_at" then options.perform_at(call["at"], call["worker"], *call["args"])
    else options.perform_async(call["worker"], *call["args"])
    end
  end

  def dump(redis)
    redis.keys("*").to_h do |key|
      type = redis.type(key)
      entry = { "type" => type, "expires" => redis.pttl(key).positive? }
      entry.merge!(contents(redis, key, type))
      [key, entry]
    end
  end

  def contents(redis, key, type)
    case type
    when "string" then { "value" => redis.get(key) }
    when "hash" then { "fields" => redis.hgetall(key).to_h do |name, value|
                                     [name, field(name, value)]
                                   end }
    when "list" then { "items" => redis.lrange(key, 0, -1) }
    when "set" then { "members" => redis.smembers(key).sort }
    when "zset" then { "members" => redis.zrange(key, 0, -1, with_scores: true) }
    end
  end

  def field(name, value)
    return { "zlib" => Zlib::Inflate.inflate(value).force_encoding("UTF-8") } if name == "data"

    value.force_encoding("UTF-8")
  end

  def normalize_text(text, ids)
    return "{now}" if RQ_TIME.match?(text)

    ids.each_with_index.reduce(text) { |out, (id, index)| out.gsub(id, "{id#{index}}") }
  end

  def normalize(value, ids)
    case value
    when Hash then value.to_h { |key, item| [normalize(key, ids), normalize(item, ids)] }
    when Array then value.map { |item| normalize(item, ids) }
    when String then normalize_text(value, ids)
    else value
    end
  end
end
