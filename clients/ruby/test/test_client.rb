# frozen_string_literal: true

# What only Ruby can pass (symbols, Times, invalid bytes), the class-style proxies that
# keep Sidekiq call sites working, and perform_in's schedule.
require "minitest/autorun"
require "simbi_workers"
require "redis_server"

class TestClient < Minitest::Test
  def setup
    TestRedis.connection.flushdb
    @client = SimbiWorkers::Client.new(redis: TestRedis.connection,
                                       catalog_file: SimbiWorkers::Catalog::DEFAULT_FILE)
    SimbiWorkers.default_client = @client
  end

  def teardown
    SimbiWorkers.default_client = nil
  end

  {
    { when: 1 } => "args[2] has the key :when: JSON object keys are strings",
    { "at" => Time.at(0).utc } =>
      "args[2]['at'] is a Time (1970-01-01 00:00:00 UTC): arguments must be JSON-native",
    { "tags" => [1,
                 :vip] } => "args[2]['tags'][1] is a Symbol (:vip): arguments must be JSON-native",
    { "x" => Float::NAN } => "args[2]['x'] is nan: JSON has no NaN or infinity",
    { "bytes" => "\xff".b } =>
      "args[2]['bytes'] is not valid UTF-8 text (\"\\xFF\"): arguments must be JSON-native"
  }.each do |value, message|
    define_method("test_refuses #{message.split(':').first} with its path") do
      error = assert_raises(SimbiWorkers::JobInputError) do
        @client.perform_async("MixpanelTrackWorker", "7", "event", value)
      end
      assert error.message.start_with?(message), error.message
      assert_equal 0, TestRedis.connection.dbsize
    end
  end

  # Beyond the shared vectors: what only Ruby passes to the call checks.
  def test_refuses_a_nil_delay_a_far_time_and_a_hash_as_a_bulk_row
    [
      [-> { @client.perform_in(nil, "SlackNotifierWorker", "s", nil, "hi") },
       "perform_in: the delay must be a number of seconds or a timedelta, got None"],
      [-> { @client.perform_at(Time.utc(9999, 1, 1), "SlackNotifierWorker", "s", nil, "hi") },
       "perform_at: 9999-01-01 00:00:00 UTC is more than ten years ahead"],
      [-> { @client.perform_bulk("ImageOptimizationWorker", [{ "id" => 1 }]) },
       "perform_bulk(ImageOptimizationWorker): item 0 must be a list of arguments, got Hash {"]
    ].each do |call, message|
      error = assert_raises(SimbiWorkers::JobInputError, &call)
      assert error.message.start_with?(message), error.message
    end
    assert_equal 0, TestRedis.connection.dbsize
  end

  def test_a_binary_string_that_is_valid_utf8_is_sent_as_text
    id = @client.perform_async("SlackNotifierWorker", "signups", nil, "héllo".b)

    assert_equal 'SlackNotifierWorker("signups", null, "héllo")',
                 TestRedis.connection.hget("rq:job:#{id}", "description")
  end

  def test_a_proxy_class_keeps_a_sidekiq_call_site_working
    id = SendIntroWorker.perform_async(7, "first")
    later = PayingSimbiWorker.perform_at(Time.utc(2030, 1, 1), 1, 2, 25, "trade", "key-1")
    twin = SendIntroWorker.set(unique_seconds: 30).perform_async(7, "first")

    assert_equal "SendIntroWorker", TestRedis.connection.hget("rq:job:#{id}", "simbi_worker")
    assert_equal 1_893_456_000.0, TestRedis.connection.zscore("rq:scheduled:critical", later)
    assert_equal id, twin
  end

  def test_perform_in_schedules_the_job_its_delay_from_now_without_queueing_it
    before = Time.now.to_f
    id = SlackNotifierWorker.perform_in(300, "signups", nil, "later")

    score = TestRedis.connection.zscore("rq:scheduled:slack", id)
    assert_operator score, :>=, before + 300
    assert_operator score, :<=, Time.now.to_f + 300
    assert_equal 0, TestRedis.connection.llen("rq:queue:slack")
  end

  def test_an_existing_class_of_a_worker_name_is_left_alone
    Object.const_set(:ShadowTestWorker, Class.new)
    catalog = Struct.new(:workers).new({ "ShadowTestWorker" => nil, "ProxyTestWorker" => nil })

    SimbiWorkers.define_proxies(catalog)

    refute_operator ShadowTestWorker, :<, SimbiWorkers::Proxy
    assert_operator ProxyTestWorker, :<, SimbiWorkers::Proxy
  ensure
    Object.send(:remove_const, :ShadowTestWorker)
    Object.send(:remove_const, :ProxyTestWorker) if Object.const_defined?(:ProxyTestWorker)
  end
end
