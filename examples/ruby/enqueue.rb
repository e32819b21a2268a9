# frozen_string_literal: true

# Enqueue a few jobs from Ruby through the simbi-workers client, as a Rails app would.
#
#   .venv/bin/simbi-workers start     # in another terminal (or set REDIS_URL to its Redis)
#   ruby -I clients/ruby/lib examples/ruby/enqueue.rb
#
# Then: var/outbox/slack.jsonl has the Slack messages and var/outbox/mixpanel.jsonl the event.
require "json"
require "simbi_workers"

ids = {
  # The Sidekiq-style call site, unchanged: a proxy class per worker.
  slack: SlackNotifierWorker.perform_async("signups", nil, "Hello from Ruby 👋"),
  tracked: SimbiWorkers.perform_async("MixpanelTrackWorker", "7", "Signed Up", { "plan" => "free" }),
  event: SimbiWorkers.perform_async("UserEventTrackerWorker", 7, "login", { "via" => "ruby" }, nil),
  later: SlackNotifierWorker.perform_in(60, "signups", nil, "A minute later, from Ruby")
}
puts JSON.pretty_generate(ids)

begin
  # Symbol keys were silently stringified by Sidekiq 6; here they are refused, as in Python.
  MixpanelTrackWorker.perform_async("7", "Signed Up", { plan: "free" })
rescue SimbiWorkers::JobInputError => e
  puts "refused: #{e.message}"
end
