/** The backup host's service: answers protection requests, owns every protected VM's endpoint and guard. */
package dev.doppel.remus.service;
