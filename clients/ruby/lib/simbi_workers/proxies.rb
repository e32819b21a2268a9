# frozen_string_literal: true

# Class-style proxies for Sidekiq call sites.
module SimbiWorkers
  # Class-style proxies, so that Rails call sites written for Sidekiq keep working:
  # `SendIntroWorker.perform_async(user.id, "first")`, `.perform_in`, `.perform_at`,
  # `.perform_bulk` and `.set(unique_seconds: 60)`. One top-level class per catalogue worker
  # whose name is not already taken: an app that still defines a Sidekiq class of that name
  # keeps it (and SimbiWorkers.shadowed_workers lists them).
  class Proxy
    class << self
      attr_reader :worker_name

      def perform_async(*args) = SimbiWorkers.perform_async(worker_name, *args)
      def perform_in(delay, *args) = SimbiWorkers.perform_in(delay, worker_name, *args)
      def perform_at(time, *args) = SimbiWorkers.perform_at(time, worker_name, *args)
      def perform_bulk(args_list) = SimbiWorkers.perform_bulk(worker_name, args_list)

      def set(unique_seconds: nil)
        ScopedProxy.new(SimbiWorkers.set(unique_seconds:), worker_name)
      end
    end
  end

  # `Worker.set(...)`: the same calls with per-call options.
  ScopedProxy = Struct.new(:scoped, :worker_name) do
    def perform_async(*args) = scoped.perform_async(worker_name, *args)
    def perform_in(delay, *args) = scoped.perform_in(delay, worker_name, *args)
    def perform_at(time, *args) = scoped.perform_at(time, worker_name, *args)
    def perform_bulk(args_list) = scoped.perform_bulk(worker_name, args_list)
  end

  module_function

  # Define a proxy class for each worker of `catalog` whose constant is free.
  def define_proxies(catalog)
    catalog.workers.each_key do |name|
      next if Object.const_defined?(name, false) # the app's own class, or a proxy already

      Object.const_set(name, Class.new(Proxy) { @worker_name = name })
    end
  end

  def shadowed_workers
    default_client.catalog.workers.each_key.select do |name|
      Object.const_defined?(name, false) && !proxy?(name)
    end
  end

  def proxy?(name)
    return false unless Object.const_defined?(name, false)

    constant = Object.const_get(name)
    constant.is_a?(Class) && constant < Proxy
  end
end
