# frozen_string_literal: true

module SimbiWorkers
  # The root of every error this client raises on purpose.
  class Error < StandardError; end

  # An enqueue was refused before anything reached Redis: unknown worker, wrong argument
  # count, an argument that is not JSON, an oversized payload, a bad delay or time. The
  # message is the Python client's, word for word (clients/vectors.json).
  class JobInputError < Error; end

  # The catalogue, the Lua script or Redis could not be reached or read.
  class ClientSetupError < Error; end
end
