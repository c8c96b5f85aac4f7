using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Service;

/// <summary>
/// Wraps the console logger so no log line carries a secret: the formatted message and the exception (message and
/// stack) go through <see cref="Secrets.Redact"/> before they are written. An SDK's error about a connection string or a
/// SAS URL is logged with the secret replaced by <c>&lt;redacted&gt;</c>.
/// </summary>
internal sealed class RedactingLoggerProvider(ILoggerProvider inner) : ILoggerProvider
{
    /// <summary>Replaces the console logger registered on <paramref name="logging"/> by a redacting one.</summary>
    public static void Wrap(ILoggingBuilder logging)
    {
        var console = logging.Services.LastOrDefault(d => d.ServiceType == typeof(ILoggerProvider) && d.ImplementationType == typeof(ConsoleLoggerProvider));
        if (console is null) return;
        logging.Services.Remove(console);
        logging.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoggerProvider, RedactingLoggerProvider>(
            sp => new RedactingLoggerProvider(ActivatorUtilities.CreateInstance<ConsoleLoggerProvider>(sp))));
    }

    public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

    public void Dispose() => inner.Dispose();

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            string message = Secrets.Redact(formatter(state, exception));
            inner.Log(logLevel, eventId, message, exception is null ? null : new RedactedException(exception), static (m, _) => m);
        }
    }

    /// <summary>An exception as logged: its message and its text (type, message, stack, inner exceptions) redacted.</summary>
    private sealed class RedactedException(Exception original) : Exception(Secrets.Redact(original.Message))
    {
        public override string ToString() => Secrets.Redact(original.ToString());

        public override string? StackTrace => original.StackTrace;
    }
}
