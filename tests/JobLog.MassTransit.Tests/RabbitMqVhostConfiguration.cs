using JobLog.Testing;
using MassTransit;

namespace JobLog.MassTransit.Tests;

/// <summary>A bus on a test's throwaway virtual host, as the suite's RabbitMQ user.</summary>
internal static class RabbitMqVhostConfiguration
{
    public static void Host(this IRabbitMqBusFactoryConfigurator cfg, RabbitMqVhost vhost) =>
        cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
        {
            h.Username("guest");
            h.Password("guest");
        });

    /// <summary>The bus on <paramref name="vhost"/>, with JobLog's task logging and the registered consumers' endpoints.</summary>
    public static void UsingTestVhost(this IBusRegistrationConfigurator x, RabbitMqVhost vhost) =>
        x.UsingRabbitMq((context, cfg) =>
        {
            cfg.Host(vhost);
            cfg.UseTaskLogging(context);
            cfg.ConfigureEndpoints(context);
        });
}
