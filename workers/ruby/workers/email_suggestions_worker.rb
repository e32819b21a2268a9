# frozen_string_literal: true

require "time"
require_relative "../runtime/email"

# SendSuggestedServicesWorker(user_id): up to five active services in the categories of
# the user's own services and of the services they favorited, best rated first, none of
# their own, none they favorited already, none suggested to them in the last 30 days.
# What it suggests goes into suggestion_history.
class SendSuggestedServicesWorker < SimbiWorker::EmailWorker
  LIMIT = 5
  REPEAT_AFTER_SECONDS = 30 * 86_400

  # Portable between SQLite and PostgreSQL: no NULLS LAST (SQLite < 3.30 lacks it), so
  # unrated services sort last through the CASE. `since` is a string on purpose, see
  # `cutoff`.
  SUGGESTIONS_SQL = sql(<<~SQL)
    SELECT s.id, s.title, s.category, s.price, s.rating_average, s.rating_count
    FROM services s
    JOIN users owner ON owner.id = s.user_id AND owner.deleted_at IS NULL
    WHERE s.status = 'active'
      AND s.user_id <> :user_id
      AND s.category IN (
        SELECT own.category FROM services own WHERE own.user_id = :user_id
        UNION
        SELECT liked.category FROM favorites f JOIN services liked ON liked.id = f.service_id
        WHERE f.user_id = :user_id)
      AND s.id NOT IN (SELECT f.service_id FROM favorites f WHERE f.user_id = :user_id)
      AND s.id NOT IN (
        SELECT h.service_id FROM suggestion_history h
        WHERE h.user_id = :user_id AND h.suggested_at >= :since)
    ORDER BY CASE WHEN s.rating_average IS NULL THEN 1 ELSE 0 END, s.rating_average DESC,
             s.rating_count DESC, s.id
    LIMIT :limit
  SQL

  def perform(user_id)
    require_id!("user_id", user_id)

    user = recipient!(user_id)
    require_email_enabled!(user_id, "suggestions")
    services = query(SUGGESTIONS_SQL, user_id:, since: cutoff, limit: LIMIT)
    skip!("nothing to suggest to user #{user_id}") if services.empty?

    # Sent first, recorded after: a failed send records nothing, so the retry suggests
    # the same services instead of skipping them for 30 days unseen.
    deliver(user, category: "suggestions", subject: subject(user, services.size),
                  view: "suggested_services", services: services.map { |row| entry(row) },
                  browse_url: link("/services"))
    record(user_id, services)

    { "suggested" => services.map { |row| row["id"] } }
  end

  private

  # UTC "YYYY-MM-DD HH:MM:SS": SQLite stores suggested_at as text in that form
  # (CURRENT_TIMESTAMP), so the comparison is between strings there, and an ISO "T"
  # separator would sort after every time of the same day. PostgreSQL parses the string
  # as a timestamptz; the explicit offset keeps the session time zone out of it.
  def cutoff
    (Time.now.utc - REPEAT_AFTER_SECONDS).strftime("%Y-%m-%d %H:%M:%S+00:00")
  end

  def subject(user, count)
    what = count == 1 ? "a service" : "#{count} services"
    name = name_or(user["first_name"], nil)
    name ? "#{name}, #{what} you might like" : "#{what.capitalize} you might like"
  end

  def entry(row)
    { title: row["title"], category: row["category"], price: row["price"],
      rating: rating(row), url: link("/services/#{row['id']}") }
  end

  def rating(row)
    return "not rated yet" if row["rating_average"].nil?

    count = row["rating_count"]
    people = count == 1 ? "person" : "people"
    format("rated %<average>.1f by %<count>d %<people>s", average: row["rating_average"], count:,
                                                          people:)
  end

  # One multi-row INSERT, so the five rows are recorded together or not at all.
  def record(user_id, services)
    params = { user_id: }
    values = services.each_with_index.map do |row, index|
      params[:"service#{index}"] = row["id"]
      "(:user_id, :service#{index})"
    end
    execute("INSERT INTO suggestion_history (user_id, service_id) VALUES #{values.join(', ')}",
            **params)
  end
end
