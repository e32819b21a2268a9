# frozen_string_literal: true

require "erb"

module SimbiWorker
  # The ERB views of the email workers (workers/ruby/views): a text and an HTML part per
  # email, each wrapped in its layout. HTML views escape every `<%= %>` on their own, so a
  # view cannot forget to escape user text; `raw` marks what is already HTML, so nothing is
  # escaped twice. Text views escape nothing.
  module EmailViews
    DIR = File.expand_path("../views", __dir__)
    FORMATS = %i[text html].freeze

    # HTML that must go out as it is: the rendered body inside the layout, say.
    # NOTE: String#to_s returns a plain String on subclasses (Ruby >= 3.0), so the mark
    # survives only while nobody calls to_s on it; `escape` looks before it converts.
    class SafeHtml < String; end

    def self.escape(value)
      return value if value.is_a?(SafeHtml)

      SafeHtml.new(ERB::Util.html_escape(value.to_s))
    end

    # Compiles `<%= expr %>` to an escaping append instead of ERB's plain `.to_s` append.
    class HtmlCompiler < ERB::Compiler
      def add_insert_cmd(out, content)
        out.push("#{@insert_cmd}(::SimbiWorker::EmailViews.escape((#{content})))")
      end
    end

    # ERB with the escaping compiler.
    class HtmlTemplate < ERB
      def make_compiler(trim_mode)
        HtmlCompiler.new(trim_mode)
      end
    end

    # What a view sees: its locals as methods, and `raw`.
    class Context
      def initialize(locals)
        locals.each { |name, value| define_singleton_method(name) { value } }
      end

      def raw(html)
        SafeHtml.new(html.to_s)
      end

      def scope
        binding
      end
    end

    # The view `name` in `format`, inside layout.<format>.erb. The layout gets the same
    # locals plus `body`.
    def self.render(name, format, locals)
      body = template(name, format).result(Context.new(locals).scope)
      body = SafeHtml.new(body) if format == :html
      template("layout", format).result(Context.new(locals.merge(body:)).scope)
    end

    def self.template(name, format)
      raise ArgumentError, "unknown view format #{format.inspect}" unless FORMATS.include?(format)

      @templates ||= {}
      @templates[[name, format]] ||= compile(File.join(DIR, "#{name}.#{format}.erb"), format)
    end

    def self.compile(path, format)
      source = File.read(path, encoding: Encoding::UTF_8)
      klass = format == :html ? HtmlTemplate : ERB
      klass.new(source, trim_mode: "-").tap { |erb| erb.filename = path }
    end

    # The name the layout greets: the recipient's first name on one line, or "there" when
    # it is blank ("Hi there,").
    def self.greeting_name(recipient)
      name = recipient && recipient["first_name"]
      name = name.to_s.scrub.gsub(/[[:space:][:cntrl:]]+/, " ").strip
      name.empty? ? "there" : name
    end

    # Every view name under DIR but the layout: tests render each one.
    def self.names
      names = Dir[File.join(DIR, "*.text.erb")].map { |path| File.basename(path, ".text.erb") }
      (names - ["layout"]).sort
    end
  end

  # Plain-text helpers for what users wrote.
  module EmailText
    ELLIPSIS = "…"

    # At most `limit` characters, the ellipsis included: whitespace runs become one space,
    # and a longer text is cut at the last word boundary before the limit. A single word
    # longer than the limit is cut inside the word rather than dropped.
    def self.excerpt(text, limit = 200)
      squeezed = text.to_s.gsub(/[[:space:]]+/, " ").strip
      return squeezed if squeezed.length <= limit

      cut = squeezed[0, limit - ELLIPSIS.length]
      unless squeezed[cut.length] == " "
        shorter = cut.sub(/\s*\S+\z/, "")
        cut = shorter unless shorter.empty?
      end
      "#{cut.rstrip}#{ELLIPSIS}"
    end
  end
end
