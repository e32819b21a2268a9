# frozen_string_literal: true

# Runs every Ruby test: `ruby workers/ruby/test/run.rb` (from any directory).
$LOAD_PATH.unshift(File.expand_path("..", __dir__))
# Dir[] returns the files sorted (Ruby >= 3.0).
Dir[File.join(__dir__, "test_*.rb")].each { |file| require File.expand_path(file) }
