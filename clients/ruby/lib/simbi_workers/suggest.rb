# frozen_string_literal: true

module SimbiWorkers
  # The "did you mean" hint for an unknown worker: the Python client's `suggest`, so that
  # the three clients name the same worker (clients/vectors.json).
  module Suggest
    module_function

    # The known name nearest to `name` (edit distance, ignoring case; the first of a tie),
    # if it is within a third of its length.
    def nearest(name, known)
      best = nil
      best_distance = (name.length / 3) + 1
      known.each do |candidate|
        distance = edit_distance(name.downcase, candidate.downcase)
        if distance < best_distance
          best = candidate
          best_distance = distance
        end
      end
      best
    end

    def edit_distance(left, right)
      previous = (0..right.length).to_a
      left.each_char.with_index(1) { |char, i| previous = next_row(previous, char, i, right) }
      previous.last
    end

    # Row i of the edit-distance table, from row i - 1 and the i-th character of the left.
    def next_row(previous, char, index, right)
      current = [index]
      right.each_char.with_index(1) do |other, j|
        cost = char == other ? 0 : 1
        current << [previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost].min
      end
      current
    end
  end
end
