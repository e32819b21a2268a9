# frozen_string_literal: true

# For `gem "simbi_workers", path: "/srv/simbi-workers/clients/ruby"` in a Gemfile. The gem
# reads clients/catalog.json and simbi_workers/lua/enqueue.lua from the checkout around
# it, so use it by path, not as a built gem.
Gem::Specification.new do |spec|
  spec.name = "simbi_workers"
  spec.version = "0.1.0"
  spec.summary = "Enqueue simbi-workers jobs from Ruby, Sidekiq-style"
  spec.authors = ["Simbi"]
  spec.license = "Nonstandard"
  spec.required_ruby_version = ">= 3.1"
  spec.files = Dir["lib/**/*.rb"]
  spec.require_paths = ["lib"]
  spec.add_dependency "redis", ">= 4.8", "< 5"
end
