# frozen_string_literal: true

# simbi-workers from Ruby: `require "simbi_workers"` (with clients/ruby/lib on the load
# path) gives SimbiWorkers.perform_async / perform_in / perform_at / perform_bulk and a
# proxy class per worker, so Sidekiq-style call sites keep working:
#
#   SimbiWorkers.perform_async("NotifyMessageWorker", user_id, talk_id, message_id)
#   SendIntroWorker.perform_in(2 * 86_400, user.id, "second")
#
# The default client reads REDIS_URL and clients/catalog.json on first use.
require_relative "simbi_workers/client"
require_relative "simbi_workers/proxies"

# The default client and the module-level calls that use it.
module SimbiWorkers
  @default_client_lock = Mutex.new

  module_function

  def default_client
    @default_client_lock.synchronize { @default_client ||= Client.new }
  end

  # Replace the default client (tests, an app with its own Redis connection).
  def default_client=(client)
    @default_client_lock.synchronize { @default_client = client }
  end

  def set(unique_seconds: nil) = default_client.set(unique_seconds:)
  def perform_async(worker, *args) = default_client.perform_async(worker, *args)
  def perform_in(delay, worker, *args) = default_client.perform_in(delay, worker, *args)
  def perform_at(time, worker, *args) = default_client.perform_at(time, worker, *args)
  def perform_bulk(worker, args_list) = default_client.perform_bulk(worker, args_list)
end

SimbiWorkers.define_proxies(SimbiWorkers::Catalog.load(ENV.fetch("SIMBI_CLIENT_CATALOG", nil)))
