using System.Diagnostics;
using System.Runtime.CompilerServices;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Whether a send's or publish's exception was thrown by a send or publish observer's <c>PreSend</c>/<c>PrePublish</c>
/// (a validation observer of the application's): MassTransit's transports call those before they are given the message,
/// so the message was certainly not sent. Read from the exception's stack trace, only when a send failed.
/// </summary>
internal static class ObserverRefusal
{
    /// <returns>
    /// The refusing observer as <c>Type.Method</c>; <c>a send observer</c> when only MassTransit's own observer list is
    /// on the stack; null when the exception was not thrown by an observer's pre-send.
    /// </returns>
    public static string? Of(Exception exception)
    {
        string? found = null;
        foreach (var frame in new StackTrace(exception, false).GetFrames())
        {
            if (frame.GetMethod() is not { DeclaringType: { } type } method)
            {
                continue;
            }

            var name = method.Name;
            if (name == "MoveNext" && type.IsDefined(typeof(CompilerGeneratedAttribute), false) && type.DeclaringType is { } outer)
            {
                // An async method's frame is its state machine's, named <Method>d__N and nested in the method's type.
                var end = type.Name.IndexOf('>', StringComparison.Ordinal);
                name = type.Name.StartsWith('<') && end > 1 ? type.Name[1..end] : name;
                type = outer;
            }

            // An explicit implementation is named after its interface: MassTransit.ISendObserver.PreSend.
            name = name[(name.LastIndexOf('.') + 1)..];
            if (name is not ("PreSend" or "PrePublish") || type == typeof(TaskDispatchObserver)
                || !(typeof(ISendObserver).IsAssignableFrom(type) || typeof(IPublishObserver).IsAssignableFrom(type)))
            {
                continue;
            }

            if (type.Assembly != typeof(ISendObserver).Assembly)
            {
                return $"{TaskLoggingServices.ShortName(type)}.{name}";
            }

            found ??= name == "PreSend" ? "a send observer" : "a publish observer";
        }

        return found;
    }
}
