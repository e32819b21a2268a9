# frozen_string_literal: true

require_relative "../runtime/email"

# SendIntroWorker(user_id, step): the onboarding series. `first` schedules `second` two
# days later, `second` schedules `third` five days later (shared/WORKERS.md). Each step
# is sent at most once per user, however often its job runs.
class SendIntroWorker < SimbiWorker::EmailWorker
  DAY_SECONDS = 86_400
  # step => [the step after it, seconds until it]
  NEXT_STEPS = {
    "first" => ["second", 2 * DAY_SECONDS],
    "second" => ["third", 5 * DAY_SECONDS],
    "third" => nil
  }.freeze
  SUBJECTS = {
    "first" => "Welcome to Simbi, %<name>s",
    "second" => "%<name>s, find something you need on Simbi",
    "third" => "%<name>s, people trade more with a complete profile"
  }.freeze
  # For a user whose first name is blank.
  NAMELESS_SUBJECTS = {
    "first" => "Welcome to Simbi",
    "second" => "Find something you need on Simbi",
    "third" => "People trade more with a complete profile"
  }.freeze

  def perform(user_id, step)
    require_step!(step)
    require_id!("user_id", user_id)

    user = recipient!(user_id)
    require_email_enabled!(user_id, "intro")
    sent = once(user_id, "intro", "intro:#{user_id}:#{step}") { deliver_step(user, step) }
    next_job_id = schedule_next(user_id, step)
    skip!("intro step #{step} was already sent to user #{user_id}") unless sent

    { "step" => step, "next_job_id" => next_job_id }
  end

  private

  def require_step!(step)
    return if NEXT_STEPS.key?(step)

    raise SimbiWorker::PermanentError,
          "unknown intro step #{step.inspect}; the steps are: #{NEXT_STEPS.keys.join(', ')}"
  end

  def deliver_step(user, step)
    name = name_or(user["first_name"], nil)
    subject = name ? format(SUBJECTS.fetch(step), name:) : NAMELESS_SUBJECTS.fetch(step)
    deliver(user, category: "intro", subject:, view: "send_intro_#{step}",
                  new_service_url: link("/services/new"), browse_url: link("/services"),
                  profile_url: link("/users/#{user['id']}/edit"))
  end

  # Claimed apart from the email: when the enqueue fails after the email went out, the
  # retry finds the email claimed but not the schedule, and schedules the next step then.
  # A second run of a step that went fine finds both claimed and enqueues nothing.
  def schedule_next(user_id, step)
    next_step, in_seconds = NEXT_STEPS.fetch(step)
    return nil if next_step.nil?

    job_id = nil
    once(user_id, "intro_scheduled", "intro:#{user_id}:#{next_step}:scheduled") do
      job_id = enqueue("SendIntroWorker", [user_id, next_step], in_seconds:)
    end
    job_id
  end
end
