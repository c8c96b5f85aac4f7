namespace PrefPipe.Text.Templates;

/// <summary>
/// A chat template could not be parsed or rendered: a syntax error, a construct this interpreter does not support,
/// a runtime error (undefined attribute of an undefined value, type mismatch), or the template's own
/// <c>raise_exception(...)</c>. The message names the line and column in the template.
/// </summary>
public sealed class TemplateException : Exception
{
    /// <summary>Creates an exception without a template position.</summary>
    public TemplateException()
    {
    }

    /// <summary>Creates an exception without a template position.</summary>
    public TemplateException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception without a template position, wrapping another.</summary>
    public TemplateException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    private TemplateException(string message, string detail, int line, int column, bool raisedByTemplate)
        : base(message)
    {
        Detail = detail;
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }

    /// <summary>The error without its position, e.g. the exact text a template passed to <c>raise_exception</c>.</summary>
    public string Detail { get; } = "";

    /// <summary>1-based line in the template (after its newlines are normalised to \n); 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>1-based column in the template; 0 when unknown.</summary>
    public int Column { get; }

    /// <summary>True when the template itself called <c>raise_exception(message)</c>, e.g. to reject a conversation.</summary>
    public bool RaisedByTemplate { get; }

    internal static TemplateException At(string detail, string source, int offset, bool raisedByTemplate = false)
    {
        offset = Math.Clamp(offset, 0, source.Length);
        int line = 1, lineStart = 0;
        for (int i = 0; i < offset; i++)
        {
            if (source[i] == '\n')
            {
                line++;
                lineStart = i + 1;
            }
        }

        int column = offset - lineStart + 1;
        string message = raisedByTemplate
            ? $"{detail} (raised by the chat template at line {line}, column {column})"
            : $"{detail} (chat template line {line}, column {column})";
        return new TemplateException(message, detail, line, column, raisedByTemplate);
    }
}
